//! The agent's build script: writes `$OUT_DIR/registry.rs`, every lesson under
//! `lessons/` compiled into the agent and mapped from its number (see `registry.rs`).
//! A lesson directory that cannot be registered fails the build, saying why.

mod registry;

use std::path::PathBuf;

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("cargo did not set {name}"))
    };
    let agent_dir = var("CARGO_MANIFEST_DIR")?;
    let lessons_dir = agent_dir.join("../../lessons");
    // A directory makes cargo look at everything below it: a lesson added, removed or
    // edited runs this again.
    println!("cargo::rerun-if-changed={}", lessons_dir.display());
    println!("cargo::rerun-if-changed=Cargo.toml");
    let agent_deps = registry::dependencies(&agent_dir.join("Cargo.toml"))?
        .into_keys()
        .collect();
    let entries = registry::scan(&lessons_dir, &agent_deps)?;
    let out = var("OUT_DIR")?.join("registry.rs");
    std::fs::write(&out, registry::render(&entries))
        .map_err(|e| format!("writing {}: {e}", out.display()))
}
