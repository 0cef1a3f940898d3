//! `cairnutl member list|add|remove|update|promote`: membership, as etcdctl names and prints it.
//!
//! `list` has etcdctl's columns in simple and table output and its JSON in `-w json`. The
//! changes call the Cluster RPCs and print etcdctl's success lines; a server without
//! multi-member support answers them with an error, which comes out as one line.

use cairn_proto::etcdserverpb::{
    Member as PbMember, MemberAddRequest, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest, ResponseHeader,
};
use serde_json::{Map, Value};

use super::online::{block_on, header_obj, print_out, put_bool, put_list, put_uint, rpc_error};
use crate::printer::{Format, Report, render};

#[derive(clap::Subcommand)]
pub enum Member {
    /// List all members.
    List,
    /// Add a member: NAME --peer-urls URL[,URL...] [--learner].
    Add {
        name: String,
        /// Comma-separated peer URLs of the new member.
        #[arg(long)]
        peer_urls: String,
        /// Add it as a learner (non-voting).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member by ID (hexadecimal).
    Remove { id: String },
    /// Update a member's peer URLs: ID --peer-urls URL[,URL...].
    Update {
        id: String,
        #[arg(long)]
        peer_urls: String,
    },
    /// Promote a learner to a voting member by ID (hexadecimal).
    Promote { id: String },
}

pub fn run(m: Member, g: &super::Global) -> anyhow::Result<()> {
    let out = block_on(async {
        let mut c = g.connect_any().await?.cluster();
        // The changes to one member print alike; list and add have their own output.
        let (id, what, header, members) = match m {
            Member::List => {
                let req = MemberListRequest {
                    linearizable: false,
                };
                let r = c.member_list(req).await.map_err(rpc_error)?.into_inner();
                return anyhow::Ok(render(
                    &list_report(r.header.as_ref(), &r.members),
                    g.format,
                ));
            }
            Member::Add {
                name,
                peer_urls,
                learner,
            } => {
                let peer_ur_ls = urls(&peer_urls)?;
                let req = MemberAddRequest {
                    peer_ur_ls,
                    is_learner: learner,
                };
                let r = c.member_add(req).await.map_err(rpc_error)?.into_inner();
                let new = r.member.clone().unwrap_or_default();
                if g.format == Format::Json {
                    let mut o = header_obj(r.header.as_ref());
                    o.insert("member".into(), member_json(&new));
                    put_list(
                        &mut o,
                        "members",
                        r.members.iter().map(member_json).collect(),
                    );
                    return Ok(format!("{}\n", Value::Object(o)));
                }
                let mut out = changed_line(new.id, "added to", r.header.as_ref());
                out.push_str(&env_lines(&name, &new, &r.members));
                return Ok(out);
            }
            Member::Remove { id } => {
                let id = member_id(&id)?;
                let req = MemberRemoveRequest { id };
                let r = c.member_remove(req).await.map_err(rpc_error)?.into_inner();
                (id, "removed from", r.header, r.members)
            }
            Member::Update { id, peer_urls } => {
                let id = member_id(&id)?;
                let req = MemberUpdateRequest {
                    id,
                    peer_ur_ls: urls(&peer_urls)?,
                };
                let r = c.member_update(req).await.map_err(rpc_error)?.into_inner();
                (id, "updated in", r.header, r.members)
            }
            Member::Promote { id } => {
                let id = member_id(&id)?;
                let req = MemberPromoteRequest { id };
                let r = c.member_promote(req).await.map_err(rpc_error)?.into_inner();
                (id, "promoted in", r.header, r.members)
            }
        };
        Ok(changed(g.format, id, what, header.as_ref(), &members))
    })?;
    print_out(&out)
}

fn member_id(s: &str) -> anyhow::Result<u64> {
    u64::from_str_radix(s, 16)
        .map_err(|e| anyhow::anyhow!("bad member ID arg ({e}), expecting ID in Hex"))
}

fn urls(s: &str) -> anyhow::Result<Vec<String>> {
    let v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    if v.is_empty() {
        anyhow::bail!("member peer urls not provided; pass --peer-urls");
    }
    Ok(v)
}

/// etcdctl's `Member <id> <what> cluster <cluster id>` line (`%16x`: space-padded hex).
fn changed_line(id: u64, what: &str, h: Option<&ResponseHeader>) -> String {
    let cluster = h.map_or(0, |h| h.cluster_id);
    format!("Member {id:16x} {what} cluster {cluster:16x}\n")
}

fn changed(
    f: Format,
    id: u64,
    what: &str,
    h: Option<&ResponseHeader>,
    members: &[PbMember],
) -> String {
    if f == Format::Json {
        let mut o = header_obj(h);
        put_list(&mut o, "members", members.iter().map(member_json).collect());
        return format!("{}\n", Value::Object(o));
    }
    changed_line(id, what, h)
}

/// The environment block etcdctl prints after `member add`, for starting the new member.
fn env_lines(name: &str, new: &PbMember, members: &[PbMember]) -> String {
    let mut cluster = Vec::new();
    for m in members {
        for u in &m.peer_ur_ls {
            if m.id == new.id {
                cluster.push(format!("{name}={u}"));
            } else if !m.name.is_empty() {
                cluster.push(format!("{}={u}", m.name));
            }
        }
    }
    format!(
        "\nETCD_NAME={name:?}\nETCD_INITIAL_CLUSTER={:?}\nETCD_INITIAL_ADVERTISE_PEER_URLS={:?}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        cluster.join(","),
        new.peer_ur_ls.join(",")
    )
}

fn member_json(m: &PbMember) -> Value {
    let mut o = Map::new();
    put_uint(&mut o, "ID", m.id);
    if !m.name.is_empty() {
        o.insert("name".into(), m.name.clone().into());
    }
    put_list(
        &mut o,
        "peerURLs",
        m.peer_ur_ls.iter().map(|u| u.clone().into()).collect(),
    );
    put_list(
        &mut o,
        "clientURLs",
        m.client_ur_ls.iter().map(|u| u.clone().into()).collect(),
    );
    put_bool(&mut o, "isLearner", m.is_learner);
    Value::Object(o)
}

fn list_report(h: Option<&ResponseHeader>, members: &[PbMember]) -> Report {
    let mut json = header_obj(h);
    put_list(
        &mut json,
        "members",
        members.iter().map(member_json).collect(),
    );
    Report {
        columns: vec![
            "ID",
            "STATUS",
            "NAME",
            "PEER ADDRS",
            "CLIENT ADDRS",
            "IS LEARNER",
        ],
        rows: members
            .iter()
            .map(|m| {
                vec![
                    format!("{:x}", m.id),
                    if m.name.is_empty() {
                        "unstarted"
                    } else {
                        "started"
                    }
                    .to_string(),
                    m.name.clone(),
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect(),
        json: Value::Object(json),
    }
}
