//! Member and cluster IDs derived exactly as etcd derives them, so the same flags give the
//! same IDs (and restores are reproducible).

use sha1::{Digest, Sha1};

fn first_u64(digest: &[u8]) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-1 is 20 bytes"))
}

/// etcd's `NewMember`: SHA-1 of the sorted peer URLs concatenated, then the cluster token, and
/// for a runtime `member add` the decimal Unix seconds.
pub fn member_id(peer_urls: &[String], token: &str, added_at_unix: Option<i64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    for u in &urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    if let Some(t) = added_at_unix {
        h.update(t.to_string().as_bytes());
    }
    first_u64(&h.finalize())
}

/// etcd's `genID`: SHA-1 over the member IDs, sorted, as 8-byte big-endian values.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_default_member_id() {
        // etcd's single-member default (`--initial-advertise-peer-urls http://localhost:2380`,
        // token `etcd-cluster`) is member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }

    #[test]
    fn url_order_does_not_matter() {
        let a = member_id(&["http://b:2380".into(), "http://a:2380".into()], "t", None);
        let b = member_id(&["http://a:2380".into(), "http://b:2380".into()], "t", None);
        assert_eq!(a, b);
        assert_ne!(
            a,
            member_id(
                &["http://a:2380".into(), "http://b:2380".into()],
                "t",
                Some(1)
            )
        );
    }
}
