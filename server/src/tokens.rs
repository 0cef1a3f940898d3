//! Auth tokens, as etcd's `--auth-token` makes them.
//!
//! - `simple` (the default): 16 random letters and a random number, registered on every
//!   member by the replicated Authenticate (`cairn_storage::auth::tokens`), valid for
//!   `--auth-token-ttl` after their last use. Lost at a restart: clients authenticate again.
//! - `jwt,pub-key=PATH,priv-key=PATH,sign-method=ALG,ttl=5m`: stateless, signed tokens with
//!   etcd's claims (`username`, `revision`, `exp`), valid on every member that has the public
//!   key (one with only the public key verifies but cannot mint).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cairn_storage::{AuthError, RequestAuth, Store};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng as _;

/// `--auth-token`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenConfig {
    Simple,
    Jwt(JwtConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub sign_method: String,
    pub pub_key: Option<PathBuf>,
    pub priv_key: Option<PathBuf>,
    pub ttl: Duration,
}

impl TokenConfig {
    pub fn parse(flag: &str) -> anyhow::Result<TokenConfig> {
        let mut parts = flag.split(',');
        match parts.next().unwrap_or_default() {
            "simple" => Ok(TokenConfig::Simple),
            "jwt" => {
                let mut c = JwtConfig {
                    sign_method: String::new(),
                    pub_key: None,
                    priv_key: None,
                    ttl: Duration::from_secs(300),
                };
                for opt in parts {
                    let (k, v) = opt.split_once('=').with_context(|| {
                        format!("--auth-token: option {opt:?} is not KEY=VALUE")
                    })?;
                    match k {
                        "sign-method" => c.sign_method = v.to_string(),
                        "pub-key" => c.pub_key = Some(PathBuf::from(v)),
                        "priv-key" => c.priv_key = Some(PathBuf::from(v)),
                        "ttl" => {
                            c.ttl = cairn_client::flags::parse_duration(v)
                                .map_err(|e| anyhow::anyhow!("--auth-token ttl: {e}"))?
                        }
                        other => bail!(
                            "--auth-token: unknown jwt option {other:?} (use pub-key, priv-key, sign-method, ttl)"
                        ),
                    }
                }
                if c.sign_method.is_empty() {
                    bail!("--auth-token jwt needs sign-method=ALG (e.g. RS256, ES256, HS256)");
                }
                algorithm(&c.sign_method)?;
                if c.pub_key.is_none() && c.priv_key.is_none() {
                    bail!("--auth-token jwt needs pub-key=PATH and/or priv-key=PATH");
                }
                Ok(TokenConfig::Jwt(c))
            }
            other => bail!("--auth-token {other:?}: unknown token type (use simple or jwt,...)"),
        }
    }
}

fn algorithm(name: &str) -> anyhow::Result<Algorithm> {
    name.parse::<Algorithm>()
        .ok()
        .filter(|a| !matches!(a, Algorithm::EdDSA))
        .with_context(|| {
            format!("--auth-token sign-method {name:?} is not supported (use RS256/384/512, PS256/384/512, ES256/384 or HS256/384/512)")
        })
}

/// Makes and resolves tokens.
pub struct Tokens {
    jwt: Option<Jwt>,
}

struct Jwt {
    alg: Algorithm,
    encode: Option<EncodingKey>,
    decode: DecodingKey,
    ttl: Duration,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl Tokens {
    /// Reads the JWT key files now: a bad one stops the start, naming it.
    pub fn new(cfg: &TokenConfig) -> anyhow::Result<Tokens> {
        let TokenConfig::Jwt(c) = cfg else {
            return Ok(Tokens { jwt: None });
        };
        let alg = algorithm(&c.sign_method)?;
        let read = |p: &PathBuf| {
            std::fs::read(p).with_context(|| format!("cannot read the JWT key {}", p.display()))
        };
        let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        let bad = |p: &PathBuf, e: jsonwebtoken::errors::Error| {
            anyhow::anyhow!("the JWT key {}: {e}", p.display())
        };
        let encode = match &c.priv_key {
            None => None,
            Some(p) => {
                let pem = read(p)?;
                Some(if hmac {
                    EncodingKey::from_secret(&pem).map_err(|e| bad(p, e))?
                } else if c.sign_method.starts_with("ES") {
                    EncodingKey::from_ec_pem(&pem).map_err(|e| bad(p, e))?
                } else {
                    EncodingKey::from_rsa_pem(&pem).map_err(|e| bad(p, e))?
                })
            }
        };
        let decode = match (&c.pub_key, &c.priv_key) {
            (Some(p), _) if !hmac => {
                let pem = read(p)?;
                if c.sign_method.starts_with("ES") {
                    DecodingKey::from_ec_pem(&pem).map_err(|e| bad(p, e))?
                } else {
                    DecodingKey::from_rsa_pem(&pem).map_err(|e| bad(p, e))?
                }
            }
            (_, Some(p)) if hmac => DecodingKey::from_secret(&read(p)?).map_err(|e| bad(p, e))?,
            (Some(p), None) => DecodingKey::from_secret(&read(p)?).map_err(|e| bad(p, e))?,
            _ => bail!(
                "--auth-token jwt with {}: give pub-key=PATH to verify tokens",
                c.sign_method
            ),
        };
        Ok(Tokens {
            jwt: Some(Jwt {
                alg,
                encode,
                decode,
                ttl: c.ttl,
            }),
        })
    }

    /// Whether tokens are simple ones (registered through raft).
    pub fn is_simple(&self) -> bool {
        self.jwt.is_none()
    }

    /// A fresh simple token: etcd's 16 random letters, a dot and a number.
    pub fn simple_token() -> String {
        let mut rng = rand::rng();
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let letters: String = (0..16)
            .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
            .collect();
        format!("{letters}.{}", rng.random_range(1..u32::MAX))
    }

    /// A signed token for `user` at auth revision `revision`.
    pub fn jwt(&self, user: &str, revision: u64) -> Result<String, AuthError> {
        let jwt = self.jwt.as_ref().ok_or(AuthError::InvalidAuthToken)?;
        let Some(key) = &jwt.encode else {
            tracing::warn!("cannot mint a JWT: --auth-token has no priv-key on this member");
            return Err(AuthError::AuthFailed);
        };
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + jwt.ttl;
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: exp.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(jwt.alg), &claims, key).map_err(|e| {
            tracing::warn!(error = %e, "cannot sign a JWT");
            AuthError::AuthFailed
        })
    }

    /// Who a token stands for; etcd's "invalid auth token" if it is unknown, expired, or
    /// does not verify.
    pub fn resolve(&self, store: &Store, token: &str) -> Result<RequestAuth, AuthError> {
        match &self.jwt {
            // as etcd's simple tokens: the request is made at the current auth revision, so
            // a permission changed since Authenticate is checked, not "revision is old"
            None => store
                .token(token)
                .map(|t| RequestAuth {
                    user: t.user,
                    revision: store.auth().revision,
                })
                .ok_or(AuthError::InvalidAuthToken),
            Some(jwt) => {
                let mut v = Validation::new(jwt.alg);
                v.leeway = 0;
                v.required_spec_claims = ["exp".to_string()].into_iter().collect();
                let data = jsonwebtoken::decode::<Claims>(token, &jwt.decode, &v)
                    .map_err(|_| AuthError::InvalidAuthToken)?;
                Ok(RequestAuth {
                    user: data.claims.username,
                    revision: data.claims.revision,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_forms() {
        assert_eq!(TokenConfig::parse("simple").unwrap(), TokenConfig::Simple);
        let TokenConfig::Jwt(c) =
            TokenConfig::parse("jwt,pub-key=a.pub,priv-key=a.key,sign-method=RS256,ttl=10m")
                .unwrap()
        else {
            panic!("jwt");
        };
        assert_eq!(c.ttl, Duration::from_secs(600));
        assert_eq!(c.sign_method, "RS256");
        assert!(TokenConfig::parse("jwt,sign-method=NOPE,pub-key=a").is_err());
        assert!(TokenConfig::parse("jwt,pub-key=a").is_err());
        assert!(TokenConfig::parse("oauth").is_err());
        assert_eq!(Tokens::simple_token().split('.').next().unwrap().len(), 16);
    }

    #[test]
    fn hmac_tokens_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret").unwrap();
        let cfg = TokenConfig::Jwt(JwtConfig {
            sign_method: "HS256".into(),
            pub_key: None,
            priv_key: Some(secret),
            ttl: Duration::from_secs(60),
        });
        let t = Tokens::new(&cfg).unwrap();
        let token = t.jwt("alice", 7).unwrap();
        let (_d, store) = {
            let d = tempfile::tempdir().unwrap();
            let s = Store::open(&d.path().join("kv.redb"), Default::default()).unwrap();
            (d, s)
        };
        let who = t.resolve(&store, &token).unwrap();
        assert_eq!((who.user.as_str(), who.revision), ("alice", 7));
        assert_eq!(
            t.resolve(&store, "garbage"),
            Err(AuthError::InvalidAuthToken)
        );
        let mut tampered = token.clone();
        tampered.pop();
        assert_eq!(
            t.resolve(&store, &tampered),
            Err(AuthError::InvalidAuthToken)
        );
    }
}
