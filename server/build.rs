//! Records the git commit this binary was built from (`PERPEFT_GIT_VERSION`, "unknown" outside
//! a git checkout; `-dirty` when tracked files differ from it), so every run record names the
//! code that produced it.

fn main() {
    let version = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // a build from uncommitted changes says so
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
        .is_some();
    let version = if dirty && version != "unknown" {
        format!("{version}-dirty")
    } else {
        version
    };
    println!("cargo:rustc-env=PERPEFT_GIT_VERSION={version}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    println!("cargo:rerun-if-changed=../.git/index");
    for dir in ["src", "../data/src", "../shared/src"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
