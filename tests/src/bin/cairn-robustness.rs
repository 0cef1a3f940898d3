//! One robustness run (`tests/src/robustness`) from the command line, for
//! `tests/robustness/soak.sh`: a scenario and a seed in, one line out
//! (`run seed=S members=N: O operations, V violations`), the seed, the fault schedule and
//! each violation after it when there are any; exit 1 then. Not a test.

use clap::Parser;

use cairn_tests::Kind;
use cairn_tests::robustness::faults::Faults;
use cairn_tests::robustness::{Scenario, partitions, run};

#[derive(Parser)]
struct Args {
    /// The seed the traffic and the fault schedule follow from.
    #[arg(long)]
    seed: u64,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// How long the traffic and the faults last.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 6)]
    clients: u32,
    #[arg(long, default_value_t = 4)]
    keys: u8,
    /// Run against real etcd 3.4 instead (the harness checking itself).
    #[arg(long)]
    etcd: bool,
    /// Print the fault and maintenance schedule of a run that passed too.
    #[arg(long)]
    schedule: bool,
}

fn main() {
    let a = Args::parse();
    let s = Scenario {
        kind: if a.etcd { Kind::Etcd } else { Kind::Cairn },
        members: a.members,
        // partitions too where they can be made (root and iptables)
        faults: if partitions::available() {
            Faults::All
        } else {
            Faults::KillAndPause
        },
        seconds: a.seconds,
        clients: a.clients,
        keys: a.keys,
        seed: a.seed,
    };
    let report = run(&s);
    println!(
        "run seed={} members={}: {} operations, {} violations ({})",
        s.seed,
        s.members,
        report.operations,
        report.violations.len(),
        report.mix
    );
    if a.schedule && report.violations.is_empty() {
        println!("  {}", report.schedule.join("\n  "));
    }
    if !report.violations.is_empty() {
        println!("{}", report.describe(&s));
        std::process::exit(1);
    }
}
