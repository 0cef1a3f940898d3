//! Key permissions as etcdctl's `role` commands take and show them (pure: no I/O). The one
//! place for the type names, the range `KEY [RANGE_END] [--prefix|--from-key]` stands for,
//! and how `role get`, `role revoke-permission` and `-w fields` print ranges.
//!
//! A range end of `\0` means "every key from KEY on"; an empty one, KEY alone; an empty KEY
//! is sent as `\0` (etcd keeps permissions as intervals, and `[\0, \0)` is every key).

use cairn_proto::authpb::Permission;
use cairn_proto::authpb::permission::Type;
use cairn_storage::index::prefix_end;
use serde_json::{Map, Value};

use super::online::{base64, put_int};
use crate::printer::go_quote;

/// `read`, `write` or `readwrite`, in any case (clientv3's `StrToPermissionType`).
pub fn parse_type(s: &str) -> Result<Type, String> {
    Type::from_str_name(&s.to_uppercase()).ok_or_else(|| format!("invalid permission type: {s}"))
}

/// The key and range end etcdctl sends for `KEY [RANGE_END]` with `--prefix`/`--from-key`
/// (its `permRange`): `args` starts at KEY; words after RANGE_END are ignored, as etcdctl
/// ignores them, and so is RANGE_END after an empty KEY.
pub fn perm_range(
    args: &[String],
    prefix: bool,
    from_key: bool,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    const EXCLUSIVE: &str = "--from-key and --prefix flags are mutually exclusive";
    let key = args.first().map_or(&b""[..], |k| k.as_bytes());
    if key.is_empty() {
        if prefix && from_key {
            return Err(EXCLUSIVE.into());
        }
        let end = if prefix || from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    let end = match (args.get(1), prefix, from_key) {
        (None, true, true) => return Err(EXCLUSIVE.into()),
        (None, true, false) => prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => Vec::new(),
        (Some(_), true, _) => return Err("unexpected endkey argument with --prefix flag".into()),
        (Some(_), _, true) => return Err("unexpected endkey argument with --from-key flag".into()),
        (Some(end), false, false) => end.as_bytes().to_vec(),
    };
    Ok((key.to_vec(), end))
}

/// `role get`'s listing: the role, then the ranges it may read and those it may write, one
/// per line after a tab: `key` alone, `[key, end)` (with ` (prefix key)` when it is one) or
/// `[key, <open ended>`.
pub fn role_listing(role: &str, perms: &[Permission]) -> Vec<u8> {
    let mut out = format!("Role {role}\n").into_bytes();
    let lists = [
        ("KV Read:\n", [Type::Read, Type::Readwrite]),
        ("KV Write:\n", [Type::Write, Type::Readwrite]),
    ];
    for (title, types) in lists {
        out.extend(title.as_bytes());
        for p in perms.iter().filter(|p| types.contains(&p.perm_type())) {
            out.push(b'\t');
            out.extend(range_text(&p.key, &p.range_end));
            out.push(b'\n');
        }
    }
    out
}

fn range_text(key: &[u8], end: &[u8]) -> Vec<u8> {
    if end.is_empty() {
        return key.to_vec();
    }
    let mut out = [b"[", key, b", "].concat();
    if end == [0] {
        out.extend(b"<open ended>");
    } else {
        out.extend([end, b")"].concat());
    }
    if prefix_end(key) == end {
        out.extend([b" (prefix ", key, b")"].concat());
    }
    out
}

/// `role revoke-permission`'s line. `key` is the argument as given (an empty one stays
/// empty), `end` the range end that was sent.
pub fn revoked_line(role: &str, key: &str, end: &[u8]) -> Vec<u8> {
    let what = if end.is_empty() {
        format!("key {key}").into_bytes()
    } else if end == [0] {
        format!("range [{key}, <open ended>").into_bytes()
    } else {
        [format!("range [{key}, ").as_bytes(), end, b")"].concat()
    };
    [
        b"Permission of ",
        &what[..],
        format!(" is revoked from role {role}\n").as_bytes(),
    ]
    .concat()
}

/// A permission in `-w json` (READ, 0, is left out as Go's omitempty leaves it).
pub fn perm_json(p: &Permission) -> Value {
    let mut o = Map::new();
    put_int(&mut o, "permType", p.perm_type.into());
    for (name, bytes) in [("key", &p.key), ("range_end", &p.range_end)] {
        if !bytes.is_empty() {
            o.insert(name.into(), base64(bytes).into());
        }
    }
    Value::Object(o)
}

/// A permission in `-w fields` (Go's `Println` puts two spaces before the type).
pub fn perm_fields(p: &Permission) -> String {
    format!(
        "\"PermType\" :  {}\n\"Key\" : {}\n\"RangeEnd\" : {}\n",
        p.perm_type().as_str_name(),
        go_quote(&p.key),
        go_quote(&p.range_end)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn range(a: &[&str], prefix: bool, from_key: bool) -> Result<(Vec<u8>, Vec<u8>), String> {
        perm_range(&args(a), prefix, from_key)
    }

    fn perm(t: Type, key: &[u8], end: &[u8]) -> Permission {
        Permission {
            perm_type: t.into(),
            key: key.to_vec(),
            range_end: end.to_vec(),
        }
    }

    #[test]
    fn type_names() {
        assert_eq!(parse_type("read"), Ok(Type::Read));
        assert_eq!(parse_type("READ"), Ok(Type::Read));
        assert_eq!(parse_type("Write"), Ok(Type::Write));
        assert_eq!(parse_type("readwrite"), Ok(Type::Readwrite));
        assert_eq!(
            parse_type("bogus").unwrap_err(),
            "invalid permission type: bogus"
        );
    }

    /// What etcdctl 3.4.23 sends (checked with `role get -w json` after each grant).
    #[test]
    fn ranges_from_flags() {
        assert_eq!(range(&["foo"], false, false), Ok((b"foo".to_vec(), vec![])));
        assert_eq!(
            range(&["pfx/"], true, false),
            Ok((b"pfx/".to_vec(), b"pfx0".to_vec()))
        );
        assert_eq!(range(&["a\u{7f}"], true, false).unwrap().1, b"a\x80");
        assert_eq!(
            range(&["a", "c"], false, false),
            Ok((b"a".to_vec(), b"c".to_vec()))
        );
        assert_eq!(range(&["a", "c", "x"], false, false).unwrap().1, b"c");
        assert_eq!(range(&["k"], false, true), Ok((b"k".to_vec(), vec![0])));
        // the empty key: every key with a flag, the key "\0" without
        assert_eq!(range(&[""], true, false), Ok((vec![0], vec![0])));
        assert_eq!(range(&[""], false, true), Ok((vec![0], vec![0])));
        assert_eq!(range(&[""], false, false), Ok((vec![0], vec![])));
        assert_eq!(range(&["", "z"], false, false), Ok((vec![0], vec![])));
    }

    #[test]
    fn flag_errors() {
        let exclusive = Err("--from-key and --prefix flags are mutually exclusive".to_string());
        assert_eq!(range(&["a"], true, true), exclusive);
        assert_eq!(range(&[""], true, true), exclusive);
        assert_eq!(
            range(&["a", "b"], true, false).unwrap_err(),
            "unexpected endkey argument with --prefix flag"
        );
        assert_eq!(
            range(&["a", "b"], false, true).unwrap_err(),
            "unexpected endkey argument with --from-key flag"
        );
        assert_eq!(
            range(&["a", "b"], true, true).unwrap_err(),
            "unexpected endkey argument with --prefix flag"
        );
    }

    /// etcdctl 3.4.23's `role get` for the grants of etcd's auth docs, byte for byte.
    #[test]
    fn listing() {
        let perms = [
            perm(Type::Readwrite, b"\0", b"\0"),
            perm(Type::Write, b"\0", b""),
            perm(Type::Readwrite, b"a", b"c"),
            perm(Type::Read, b"foo", b""),
            perm(Type::Read, b"k", b"\0"),
            perm(Type::Write, b"pfx/", b"pfx0"),
            perm(Type::Read, b"x", b""),
        ];
        let want = "Role r1\nKV Read:\n\t[\0, <open ended>\n\t[a, c)\n\tfoo\n\t[k, <open ended>\n\tx\n\
                    KV Write:\n\t[\0, <open ended>\n\t\0\n\t[a, c)\n\t[pfx/, pfx0) (prefix pfx/)\n";
        assert_eq!(String::from_utf8(role_listing("r1", &perms)).unwrap(), want);
        assert_eq!(
            role_listing("root", &[]),
            b"Role root\nKV Read:\nKV Write:\n"
        );
        // a prefix whose end is all 0xff bytes ends at "\0": open ended, and a prefix
        assert_eq!(
            range_text(b"\xff", b"\0"),
            b"[\xff, <open ended> (prefix \xff)"
        );
    }

    #[test]
    fn revoked_lines() {
        let cases: [(&str, &[u8], &str); 6] = [
            ("foo", b"", "key foo"),
            ("", b"", "key "),
            ("a", b"c", "range [a, c)"),
            ("pfx/", b"pfx0", "range [pfx/, pfx0)"),
            ("k", b"\0", "range [k, <open ended>"),
            ("", b"\0", "range [, <open ended>"),
        ];
        for (key, end, what) in cases {
            let line = String::from_utf8(revoked_line("r1", key, end)).unwrap();
            assert_eq!(
                line,
                format!("Permission of {what} is revoked from role r1\n")
            );
        }
    }

    /// etcdctl's `-w json` and `-w fields` for two of the grants above.
    #[test]
    fn json_and_fields() {
        let rw = perm(Type::Readwrite, b"a", b"c");
        assert_eq!(
            perm_json(&rw).to_string(),
            r#"{"permType":2,"key":"YQ==","range_end":"Yw=="}"#
        );
        let read = perm(Type::Read, b"foo", b"");
        assert_eq!(perm_json(&read).to_string(), r#"{"key":"Zm9v"}"#);
        assert_eq!(
            perm_fields(&perm(Type::Readwrite, b"\0", b"\0")),
            "\"PermType\" :  READWRITE\n\"Key\" : \"\\x00\"\n\"RangeEnd\" : \"\\x00\"\n"
        );
        assert_eq!(
            perm_fields(&read),
            "\"PermType\" :  READ\n\"Key\" : \"foo\"\n\"RangeEnd\" : \"\"\n"
        );
    }
}
