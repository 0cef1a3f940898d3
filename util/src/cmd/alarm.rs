//! `cairnutl alarm list|disarm`: the cluster's alarms, printed as etcdctl prints them.
//!
//! Simple output is one `memberID:<decimal> alarm:<NAME> ` line per alarm (the trailing space
//! is etcdctl's, from Go's compact proto text); `-w json` is the `AlarmResponse`.

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};
use serde_json::{Map, Value};

use super::online::{block_on, header_obj, print_out, put_int, put_uint, rpc_error};
use crate::printer::{Format, Report, render};

#[derive(clap::Subcommand)]
pub enum Alarm {
    /// List all alarms.
    List,
    /// Deactivate every listed alarm.
    Disarm,
}

pub fn run(a: Alarm, g: &super::Global) -> anyhow::Result<()> {
    let r = block_on(async {
        let mut c = g.connect_any().await?.maintenance();
        let listed = c
            .alarm(AlarmRequest {
                action: AlarmAction::Get as i32,
                member_id: 0,
                alarm: AlarmType::None as i32,
            })
            .await
            .map_err(rpc_error)?
            .into_inner();
        if matches!(a, Alarm::List) {
            return anyhow::Ok(listed);
        }
        // As clientv3's AlarmDisarm: deactivate each listed alarm, report what was disarmed.
        let mut disarmed = AlarmResponse {
            header: listed.header,
            alarms: Vec::new(),
        };
        for m in &listed.alarms {
            let r = c
                .alarm(AlarmRequest {
                    action: AlarmAction::Deactivate as i32,
                    member_id: m.member_id,
                    alarm: m.alarm,
                })
                .await
                .map_err(rpc_error)?
                .into_inner();
            disarmed.header = r.header;
            disarmed.alarms.extend(r.alarms);
        }
        Ok(disarmed)
    })?;
    match g.format {
        // etcdctl prints each AlarmMember as Go's compact proto text, not as a row.
        Format::Simple => print_out(
            &r.alarms
                .iter()
                .map(|m| simple_line(m) + "\n")
                .collect::<String>(),
        ),
        f => print_out(&render(&report(&r), f)),
    }
}

fn alarm_name(m: &AlarmMember) -> String {
    AlarmType::try_from(m.alarm)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| m.alarm.to_string())
}

fn report(r: &AlarmResponse) -> Report {
    let mut json = header_obj(r.header.as_ref());
    let alarms: Vec<Value> = r
        .alarms
        .iter()
        .map(|m| {
            let mut o = Map::new();
            put_uint(&mut o, "memberID", m.member_id);
            put_int(&mut o, "alarm", m.alarm.into());
            Value::Object(o)
        })
        .collect();
    if !alarms.is_empty() {
        json.insert("alarms".into(), alarms.into());
    }
    Report {
        columns: vec!["MEMBER ID", "ALARM"],
        rows: r
            .alarms
            .iter()
            .map(|m| vec![m.member_id.to_string(), alarm_name(m)])
            .collect(),
        json: Value::Object(json),
    }
}

/// etcdctl's simple line for one alarm.
fn simple_line(m: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", m.member_id, alarm_name(m))
}
