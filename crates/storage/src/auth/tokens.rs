//! etcd's simple tokens: opaque strings minted by `Authenticate`, registered on every member
//! when the command is applied, valid for `--auth-token-ttl` after their last use (etcd's
//! `simpleTokenTTLKeeper` resets the TTL at every request). Kept in memory only, as in etcd:
//! after a restart clients get "invalid auth token" and authenticate again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub user: String,
    /// The auth revision when the token was minted. Requests made with a simple token use
    /// the current revision instead (etcd's `tokenSimple.info`): only a JWT carries its own.
    pub revision: u64,
}

#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    tokens: HashMap<String, (TokenInfo, Instant)>,
    /// When expired tokens were last swept out.
    swept: Instant,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            tokens: HashMap::new(),
            swept: Instant::now(),
        }
    }

    pub fn insert(&mut self, token: String, info: TokenInfo, now: Instant) {
        self.sweep(now);
        self.tokens.insert(token, (info, now + self.ttl));
    }

    /// The token's user and revision, its TTL restarted; `None` if unknown or expired.
    pub fn lookup(&mut self, token: &str, now: Instant) -> Option<TokenInfo> {
        let ttl = self.ttl;
        let (info, expires) = self.tokens.get_mut(token)?;
        if *expires <= now {
            self.tokens.remove(token);
            return None;
        }
        *expires = now + ttl;
        Some(info.clone())
    }

    /// Forgets every token of `user` (deleted, or its password changed).
    pub fn invalidate_user(&mut self, user: &str) {
        self.tokens.retain(|_, (info, _)| info.user != user);
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&mut self) {
        self.tokens.clear();
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < self.ttl {
            return;
        }
        self.tokens.retain(|_, (_, expires)| *expires > now);
        self.swept = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str) -> TokenInfo {
        TokenInfo {
            user: user.into(),
            revision: 3,
        }
    }

    #[test]
    fn sliding_ttl_and_invalidation() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        let mut t = SimpleTokens::new(ttl);
        t.insert("a.1".into(), info("alice"), t0);
        t.insert("b.2".into(), info("bob"), t0);
        // used just before it expires: good for another TTL
        assert_eq!(
            t.lookup("a.1", t0 + ttl - Duration::from_secs(1)),
            Some(info("alice"))
        );
        assert!(
            t.lookup("a.1", t0 + ttl + Duration::from_secs(100))
                .is_some()
        );
        assert_eq!(t.lookup("b.2", t0 + ttl), None, "unused for a TTL: expired");
        t.invalidate_user("alice");
        assert_eq!(t.lookup("a.1", t0), None);
        t.insert("c.3".into(), info("carol"), t0);
        t.clear();
        assert_eq!(t.lookup("c.3", t0), None);
        assert_eq!(t.lookup("nope", t0), None);
    }
}
