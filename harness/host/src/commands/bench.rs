//! `bpflab bench`: where the time goes, and `--peers`.

use std::process::ExitCode;

use crate::arch::Arch;
use crate::config::{self, Config};
use crate::kernel::catalog::Catalog;
use crate::kernel::KernelSpec;
use crate::run::RunRequest;
use crate::term;
use crate::vm::accel::AccelRequest;

/// Measures lesson 1: warm runs and a cold one, split by phase.
pub fn run(
    kernel: Option<String>,
    arch: Arch,
    runs: usize,
    cold: bool,
    accel: AccelRequest,
) -> anyhow::Result<ExitCode> {
    let mut request = RunRequest::lesson(1);
    request.kernel = kernel.as_deref().map(KernelSpec::parse);
    request.arch = arch;
    request.accel = accel;
    if runs % 2 == 1 && runs > 1 {
        term::status(format!(
            "{runs} runs: the ratio to the floor counts pairs in twos (one run first, one \
             floor first), so the last pair is left out of it; an even --runs uses them all"
        ));
    }
    term::status("warming up (fetches and builds whatever is not cached yet)");
    let (_, first) = crate::bench::sample(&request)?;
    let mut warm = Vec::new();
    let mut floor = Vec::new();
    for i in 0..runs {
        crate::interrupt::check()?;
        // In turns, which of the pair boots first: on a machine whose boots alternate
        // between a faster and a slower one (measured on a 2-core VM: 0.1 s apart, boot
        // after boot), a fixed order would put every run on one side of that and every
        // bare boot on the other.
        let floor_first = i % 2 == 1;
        term::status(format!(
            "warm run {}/{runs} and the floor (a bare boot), {} first",
            i + 1,
            if floor_first { "the floor" } else { "the run" }
        ));
        if floor_first {
            floor.push(crate::bench::floor::time(&request, &first)?);
        }
        warm.push(crate::bench::sample(&request)?.0);
        if !floor_first {
            floor.push(crate::bench::floor::time(&request, &first)?);
        }
    }
    let cold = match cold {
        false => None,
        true => {
            // An empty cache of its own, and no compiled lessons: the first run of a new user
            // (minus building the agent, which cargo caches in target/).
            term::status("cold run: empty kernel cache, lessons recompiled");
            let scratch = tempfile::tempdir()?;
            let _ = std::fs::remove_dir_all(config::work_dir().join("bpf"));
            let mut cold = request.clone();
            cold.cache_dir = Some(scratch.path().to_path_buf());
            Some(crate::bench::sample(&cold)?.0)
        }
    };
    let report = crate::bench::BenchReport {
        kernel: first.kernel.origin.clone(),
        arch: arch.name().to_string(),
        accel: first.accel.accel.to_string(),
        kernel_bytes: std::fs::metadata(&first.kernel.image)
            .map(|m| m.len())
            .unwrap_or(0),
        initramfs_bytes: first.initramfs_bytes,
        warm,
        cold,
        floor,
    };
    println!("{}", crate::bench::table(&report));
    let path = config::work_dir().join("bench.json");
    std::fs::create_dir_all(config::work_dir())?;
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    term::status(format!("figures written to {}", path.display()));
    Ok(ExitCode::SUCCESS)
}

/// `bench --peers`: bpflab, vmtest and virtme-ng in turns on one kernel image.
/// Runs bpflab, vmtest and virtme-ng in turns on one kernel image.
pub fn peers(
    kernel: Option<String>,
    arch: Arch,
    rounds: usize,
    accel: AccelRequest,
) -> anyhow::Result<()> {
    use crate::bench::peers;
    use crate::kernel::build::Flavour;
    anyhow::ensure!(
        arch == Arch::X86_64,
        "--peers compares on x86-64 guests only (the peers' arm64 support needs other kernels)"
    );
    let config = Config::load()?;
    let catalog = Catalog::load_shipped()?;
    // All three are given the same file, the peers' bzImage; bpflab boots the vmlinux
    // inside it through PVH, as it does any bzImage of a kernel with CONFIG_PVH.
    let image = match kernel.as_deref().map(KernelSpec::parse) {
        Some(KernelSpec::Path(path)) => path,
        spec => {
            let series = match &spec {
                Some(KernelSpec::Series(name)) => Flavour::split(name)
                    .map(|(series, _)| series.to_string())
                    .unwrap_or_else(|| name.clone()),
                _ => catalog.default.clone(),
            };
            let built = crate::kernel::build::obtain(
                &config,
                &catalog,
                &series,
                Flavour::Peers,
                arch,
                config::cpus(),
            )?;
            // bpflab itself would boot the uncompressed vmlinux beside it.
            built.image.with_file_name("vmlinuz")
        }
    };
    let accel = crate::vm::accel::choose(accel, arch)?.accel;
    let boots = crate::kernel::own::obtain(&image, arch, &config)?.origin;
    let report = peers::compare(&image, boots, accel, rounds)?;
    println!("{}", peers::table(&report));
    let path = config::work_dir().join("bench-peers.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    term::status(format!("figures written to {}", path.display()));
    Ok(())
}
