//! Where the executables under test live.
//!
//! A test crate cannot use `CARGO_BIN_EXE_*` for another package's binaries, so on first use
//! the cairn binaries are built with the same cargo, profile and target dir as the running
//! test executable. `CAIRN_BIN` / `CAIRNUTL_BIN` override the paths (no build then).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Real etcd, from Debian's `etcd-server` package.
pub const ETCD: &str = "/usr/bin/etcd";
/// Real etcdctl, from Debian's `etcd-client` package (needs `ETCDCTL_API=3`).
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// True when real etcd and etcdctl are installed.
///
/// In CI (`CI=true`) their absence is a setup bug, so this panics; elsewhere the test is
/// skipped with a note.
pub fn require_etcd() -> bool {
    require(&[ETCD, ETCDCTL], "etcd-server etcd-client")
}

/// The age tool, from Debian's `age` package: `age-keygen` makes the keys of the encrypted
/// backup tests, `age -d` reads what Cairn encrypted.
pub const AGE: &str = "/usr/bin/age";
pub const AGE_KEYGEN: &str = "/usr/bin/age-keygen";

/// True when the age tool is installed (as [`require_etcd`]).
pub fn require_age() -> bool {
    require(&[AGE, AGE_KEYGEN], "age")
}

/// Debian's `iptables`: the robustness harness's partitions (`robustness::partitions`).
pub const IPTABLES: &str = "/usr/sbin/iptables";

/// True when iptables is installed (as [`require_etcd`]).
pub fn require_iptables() -> bool {
    require(&[IPTABLES], "iptables")
}

/// True when every one of `tools` exists; in CI their absence panics, elsewhere the test is
/// skipped with a note naming Debian's `packages`.
fn require(tools: &[&str], packages: &str) -> bool {
    if tools.iter().all(|t| Path::new(t).exists()) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{packages} not installed: .ci/run must install them");
    }
    eprintln!(
        "skipping: {} missing (apt-get install {packages})",
        tools.join(" or ")
    );
    false
}

/// Path of the `cairn` server binary, building it on first use.
pub fn cairn_bin() -> PathBuf {
    bin("CAIRN_BIN", "cairn")
}

/// Path of the `cairnutl` binary, building it on first use.
pub fn cairnutl_bin() -> PathBuf {
    bin("CAIRNUTL_BIN", "cairnutl")
}

fn bin(override_var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    let dir = built_dir();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} missing after cargo build",
        path.display()
    );
    path
}

/// Builds both cairn binaries once per test process; returns the directory holding them.
fn built_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> PathBuf {
    // current_exe = <target>/[<triple>/]<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => panic!(
            "cannot tell the cargo profile from {}",
            profile_dir.display()
        ),
    };
    // Cargo marks the root of a target dir with CACHEDIR.TAG; one level deeper means the
    // tests were built for an explicit --target triple.
    let parent = profile_dir.parent().expect("profile dir has a parent");
    let (target_dir, triple) = if parent.join("CACHEDIR.TAG").exists() {
        (parent.to_path_buf(), None)
    } else {
        let root = parent.parent().expect("triple dir has a parent");
        (
            root.to_path_buf(),
            parent.file_name().map(|t| t.to_string_lossy().into_owned()),
        )
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("-q")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--profile", &profile])
        .args([
            "-p",
            "cairn-server",
            "--bin",
            "cairn",
            "-p",
            "cairn-util",
            "--bin",
            "cairnutl",
        ])
        .env("CARGO_TARGET_DIR", &target_dir);
    if let Some(triple) = &triple {
        cmd.args(["--target", triple]);
    }
    let status = cmd
        .status()
        .expect("run cargo build for the cairn binaries");
    assert!(
        status.success(),
        "cargo build of cairn/cairnutl failed: {status}"
    );
    profile_dir
}

/// Runs `cairnutl ARGS` to completion, with no stdin and without the environment variables
/// that would change its defaults (`ETCDCTL_ENDPOINTS`, `ETCD_DATA_DIR`).
pub fn cairnutl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(cairnutl_bin())
        .env_remove("ETCDCTL_ENDPOINTS")
        .env_remove("ETCD_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .args(args)
        .output()
        .expect("run cairnutl")
}

/// A finished command's stdout then stderr, for assertions and messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
