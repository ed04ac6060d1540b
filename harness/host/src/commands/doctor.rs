//! `bpflab doctor`: for each tool a run needs, which one bpflab will use (the host's or
//! its own unpacked copy, version, path) and why, and what is missing; and `bpflab tools
//! update`, which pins the packages it unpacks.

use std::path::Path;
use std::process::ExitCode;

use crate::arch::Arch;
use crate::config::Config;
use crate::kernel::apt::{mirror::Mirrors, Distribution};
use crate::provision::{self, cache, closure, host::HostPackages, lock, probe, Need, OnHost};
use crate::tools;

/// Prints the report; fails (exit 1) if a lesson could not run here.
pub fn run() -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let host = Arch::host();
    let glibc = provision::release::host_glibc();
    let lock = lock::ToolsLock::load(&lock::lock_path())?;
    println!(
        "host: {}, glibc {}",
        host.map_or("unsupported arch", Arch::name),
        glibc.as_deref().unwrap_or("none")
    );
    let release = host.map(|h| provision::release::choose(&lock, h, glibc.as_deref()));
    match &release {
        Some(Ok(r)) => println!(
            "tools bpflab unpacks come from Debian {} (the newest release whose glibc, {}, \
             this host's can stand in for), pinned in images/tools.lock",
            r.release, r.glibc
        ),
        Some(Err(e)) => println!("bpflab cannot unpack tools here: {e}"),
        None => println!("bpflab runs on x86-64 and arm64 hosts only"),
    }
    let on = provision::enabled(&config);
    println!(
        "provisioning: {}",
        if on {
            format!(
                "on ({}=1 or `provision = false` in {} turns it off)",
                provision::OFF_ENV,
                config.path.display()
            )
        } else {
            format!(
                "off ({} is set, or `provision = false` in {})",
                provision::OFF_ENV,
                config.path.display()
            )
        }
    );
    match Mirrors::discover(&config, Distribution::Debian) {
        Ok(m) => println!("Debian mirror: from {}", m.origin),
        Err(e) => println!("Debian mirror: none ({e})"),
    }
    println!();
    let mut unusable = 0;
    for need in provision::spec::ALL {
        let line = match host {
            Some(host) => describe(&config, &lock, need, host, on),
            None => Err("unsupported host".to_string()),
        };
        match line {
            Ok(line) => println!("{}\n    {line}", need.describe()),
            Err(line) => {
                unusable += 1;
                println!("{}\n    MISSING: {line}", need.describe());
            }
        }
    }
    println!();
    println!("for the guest (bpflab's always: Debian's, for the guest's arch, with its glibc):");
    for need in provision::spec::GUEST {
        let line = match host {
            Some(host) => describe(&config, &lock, need, host, on),
            None => Err("unsupported host".to_string()),
        };
        match line {
            Ok(line) => println!("{}\n    {line}", need.describe()),
            Err(line) => println!("{}\n    not available: {line}", need.describe()),
        }
    }
    println!();
    // Lesson 44's kernel side is Rust: rustup and crates.io bring what it needs.
    println!("for kernel sides in Rust (lesson 44), from rustup and crates.io:");
    match crate::image::bpf_linker::report(&config.cache_dir) {
        Ok(line) => println!("  {line}"),
        Err(line) => println!("  not available: {line}"),
    }
    println!();
    println!("not unpacked by bpflab (install them when you need them):");
    build_tools(host);
    Ok(if unusable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One need's line: what will be used and why (`Ok`), or why nothing can be (`Err`).
fn describe(
    config: &Config,
    lock: &lock::ToolsLock,
    need: Need,
    host: Arch,
    on: bool,
) -> Result<String, String> {
    let why = match provision::on_host(config, need) {
        _ if need.for_guest() => "the guest has none of its own".to_string(),
        OnHost::Usable { path, version } => {
            let path = path.map_or(
                "/usr/include/bpf (on clang's default include path)".into(),
                |p| p.display().to_string(),
            );
            let version = version.map(|v| format!(" {v}")).unwrap_or_default();
            return Ok(format!("host{version}: {path}"));
        }
        OnHost::TooOld { path, version } => {
            format!("the host's {} is {version}, too old", path.display())
        }
        OnHost::Missing => "the host has none".into(),
    };
    let install = format!("sudo apt-get install {}", need.apt_package(host));
    if !on && need.for_guest() {
        return Err(
            "provisioning is off, and only bpflab can give the guest one: `--shell` \
                    goes without it, and the lessons that run it cannot run"
                .to_string(),
        );
    }
    if !on {
        return Err(format!(
            "{why}; provisioning is off; install with: {install}"
        ));
    }
    let place = cache::place(config, lock, need, host).map_err(|e| format!("{why}; {e:#}"))?;
    if let Some(unpacked) = cache::cached(&place) {
        let what = match need.program() {
            Some(name) => {
                let program = provision::cached_program(name, &unpacked.root)
                    .map_err(|e| format!("{e:#}"))?;
                let version = probe::version(&program, &config.cache_dir)
                    .ok_or_else(|| format!("the cached {} does not run", program.path.display()))?;
                format!(" {version}: {}", program.path.display())
            }
            None if need.for_guest() => format!(
                ": {}",
                unpacked
                    .root
                    .join(crate::image::guest_tools::BPFTOOL)
                    .display()
            ),
            None => need
                .include_dirs(&unpacked.root)
                .first()
                .map_or(String::new(), |d| format!(": {}", d.display())),
        };
        return Ok(format!(
            "bpflab's{what}\n    (Debian {}, {} package(s) unpacked; {why})",
            unpacked.record.release,
            unpacked.record.packages.len()
        ));
    }
    let set = need.packages(host);
    let host_packages = (!set.guest).then(|| HostPackages::read(Path::new("/var/lib/dpkg")));
    let wanted = closure::packages(
        lock,
        &place.release,
        need.package_arch(host).debian_arch(),
        &set,
        host_packages.as_ref(),
    )
    .map_err(|e| format!("{e:#}"))?;
    let size: u64 = wanted.iter().map(|p| p.package.size).sum();
    let names: Vec<&str> = wanted.iter().map(|p| p.package.name.as_str()).collect();
    Ok(format!(
        "bpflab's, on first use ({why}): {} package(s) of Debian {}, {} to download\n    ({})",
        wanted.len(),
        place.release,
        provision::megabytes(size),
        names.join(", ")
    ))
}

/// The kernel build tools (`bpflab kernels build`): present or missing.
fn build_tools(host: Option<Arch>) {
    let mut programs = vec![
        ("make", "make"),
        ("gcc", "gcc"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("pahole", "dwarves"),
    ];
    for arch in Arch::ALL {
        if host.is_some_and(|h| h != arch) {
            let gcc: &'static str = match arch {
                Arch::X86_64 => "x86_64-linux-gnu-gcc",
                Arch::Arm64 => "aarch64-linux-gnu-gcc",
            };
            programs.push((gcc, arch.cross_gcc_package()));
        }
    }
    let missing: Vec<&str> = programs
        .iter()
        .filter(|(program, _)| tools::which(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    let present: Vec<&str> = programs
        .iter()
        .filter(|(program, _)| tools::which(program).is_some())
        .map(|(program, _)| *program)
        .collect();
    println!("  kernel build tools: present: {}", present.join(", "));
    if !missing.is_empty() {
        println!("  missing: sudo apt-get install {}", missing.join(" "));
    }
}

/// `bpflab tools update`.
pub fn update(releases: &[String], arches: &[Arch]) -> anyhow::Result<ExitCode> {
    let config = Config::load()?;
    let releases: Vec<String> = if releases.is_empty() {
        provision::update::RELEASES
            .iter()
            .map(|r| r.to_string())
            .collect()
    } else {
        releases.to_vec()
    };
    let arches = if arches.is_empty() {
        &Arch::ALL[..]
    } else {
        arches
    };
    provision::update::update(&config, &releases, arches)?;
    Ok(ExitCode::SUCCESS)
}
