//! `cairnutl`: the Cairn operations tool. Online commands take etcdctl's connection flags
//! (`--endpoints`, TLS, `--user`); offline ones take `--data-dir` (the server stopped). This
//! file only parses flags and dispatches.

mod cmd;
mod printer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::printer::Format;

// as in the server: glibc's malloc costs the load generator and restore measurably
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "cairnutl",
    version,
    about = "Operate Cairn (and etcd) clusters: status, health, hashes"
)]
struct Cli {
    /// etcdctl's connection flags: --endpoints, TLS, --user, timeouts.
    #[command(flatten)]
    conn: cairn_client::flags::ConnectionFlags,
    /// Output format: simple, json, table or fields.
    #[arg(
        short = 'w',
        long = "write-out",
        global = true,
        default_value = "simple"
    )]
    write_out: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Endpoint checks.
    #[command(subcommand)]
    Endpoint(cmd::endpoint::Endpoint),
    /// Snapshot save (online), status, verify and restore (offline).
    #[command(subcommand)]
    Snapshot(cmd::snapshot::Snapshot),
    /// Compact the history up to a revision (etcdctl compaction).
    Compaction(cmd::compaction::Args),
    /// Defragment the backend: online per endpoint, or offline with --data-dir.
    Defrag(cmd::defrag::Args),
    /// Alarms: list or disarm.
    #[command(subcommand)]
    Alarm(cmd::alarm::Alarm),
    /// Membership: list (add/remove/update/promote need multi-member support).
    #[command(subcommand)]
    Member(cmd::member::Member),
    /// Transfer leadership to a member.
    MoveLeader(cmd::move_leader::Args),
    /// Users: add, get, list, delete, passwd, grant-role, revoke-role.
    #[command(subcommand)]
    User(cmd::user::User),
    /// Roles: add, get, list, delete, grant-permission, revoke-permission.
    #[command(subcommand)]
    Role(cmd::role::Role),
    /// Authentication: enable, disable, status.
    #[command(subcommand)]
    Auth(cmd::auth::Auth),
    /// Quick checks: read keys.
    Get(cmd::kv::GetArgs),
    /// Quick checks: write a key.
    Put(cmd::kv::PutArgs),
    /// Quick checks: delete keys.
    Del(cmd::kv::DelArgs),
    /// Quick checks: watch keys.
    Watch(cmd::kv::WatchArgs),
    /// Offline: HashKV of a stopped member's data dir.
    Hashkv(cmd::hashkv::Args),
    /// Offline: revision, compaction, keys, sizes and members of a stopped member's data dir.
    Status(cmd::status::Args),
    /// Continuous backups into a directory: run, list, verify.
    #[command(subcommand)]
    Backup(cmd::backup::Backup),
    /// Mirror a prefix into another cluster, continuously (etcdctl make-mirror).
    MakeMirror(cmd::make_mirror::Args),
    /// Benchmarks for any etcd-API endpoint (etcd's `benchmark`): put, range, watch, ...
    #[command(subcommand)]
    Bench(cmd::bench::Bench),
    /// Print the version of cairnutl.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let global = cmd::Global::new(&cli.conn, cli.write_out);
    let result = match cli.command {
        Command::Version => {
            println!("cairnutl version: {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Endpoint(e) => cmd::endpoint::run(e, &global),
        Command::Snapshot(s) => cmd::snapshot::run(s, &global),
        Command::Compaction(a) => cmd::compaction::run(a, &global),
        Command::Defrag(a) => cmd::defrag::run(a, &global),
        Command::Alarm(a) => cmd::alarm::run(a, &global),
        Command::Member(a) => cmd::member::run(a, &global),
        Command::MoveLeader(a) => cmd::move_leader::run(a, &global),
        Command::User(u) => cmd::user::run(u, &global),
        Command::Role(r) => cmd::role::run(r, &global),
        Command::Auth(a) => cmd::auth::run(a, &global),
        Command::Get(a) => cmd::kv::get(a, &global),
        Command::Put(a) => cmd::kv::put(a, &global),
        Command::Del(a) => cmd::kv::del(a, &global),
        Command::Watch(a) => cmd::kv::watch(a, &global),
        Command::Hashkv(a) => cmd::hashkv::run(a, &global),
        Command::Status(a) => cmd::status::run(a, &global),
        Command::Bench(b) => cmd::bench::run(b, &global),
        Command::MakeMirror(a) => cmd::make_mirror::run(a, &global),
        Command::Backup(b) => cmd::backup::run(b, &global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(cmd::exit::code_of(&e))
        }
    }
}
