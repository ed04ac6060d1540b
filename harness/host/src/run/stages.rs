//! The stages of a run before the guest boots: which lessons, which kernel (checked),
//! the agent and the lessons' objects, QEMU's configuration and the initramfs.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bpflab_protocol::{LessonPlan, Outcome, Plan};

use super::RunRequest;
use crate::arch::Arch;
use crate::config::{self, Config};
use crate::image::bpf::BpfObject;
use crate::image::{agent, bpf, bpf_rust, guest_tools, initramfs};
use crate::interrupt;
use crate::kernel::catalog::Catalog;
use crate::kernel::{self, KernelImage, KernelSpec};
use crate::lessons::{self, GuestTool, Lesson, RefusedBy};
use crate::vm::accel::{self, AccelChoice};
use crate::vm::qemu::{Init, Machine, QemuConfig};

/// A lesson to run, with the parts asked for (empty: all).
pub(super) type Selected<'a> = Vec<(&'a Lesson, Vec<String>)>;

/// The lessons the request names, each part checked against the lesson's own.
pub(super) fn select<'a>(request: &RunRequest, all: &'a [Lesson]) -> anyhow::Result<Selected<'a>> {
    let selected: Selected<'a> = request
        .lessons
        .iter()
        .map(|(n, parts)| lessons::find(all, *n).map(|l| (l, parts.clone())))
        .collect::<anyhow::Result<_>>()?;
    for (lesson, parts) in &selected {
        if let Some(bad) = parts.iter().find(|p| !lesson.parts.contains(p)) {
            anyhow::bail!(
                "lesson {} has no part `{bad}`; its parts are: {}",
                lesson.number,
                if lesson.parts.is_empty() {
                    "none (it has a single part)".to_string()
                } else {
                    lesson.parts.join(", ")
                }
            );
        }
    }
    Ok(selected)
}

/// The kernel to boot, refused before booting if its config lacks what lessons need.
pub(super) fn kernel(
    request: &RunRequest,
    catalog: &Catalog,
    config: &Config,
) -> anyhow::Result<KernelImage> {
    let spec = request
        .kernel
        .clone()
        .unwrap_or_else(|| KernelSpec::Series(catalog.default.clone()));
    let kernel = kernel::obtain(&spec, request.arch, catalog, config, request.refresh_kernel)?;
    if let Some(config_path) = &kernel.config {
        let config_text = std::fs::read_to_string(config_path)
            .with_context(|| format!("reading the kernel's config {}", config_path.display()))?;
        let lacking = kernel::check::missing(&config_text, request.arch);
        if !lacking.is_empty() {
            anyhow::bail!(
                "kernel {} lacks what bpflab's guest needs: {}. Pick another kernel (`bpflab \
                 kernels`) or build one that has them (`bpflab kernels build <series>`)",
                kernel.origin,
                lacking.join(", ")
            );
        }
        let no_tracing = kernel::check::missing_tracing(&config_text);
        if !no_tracing.is_empty() {
            crate::term::status(format!(
                "kernel {} has no BPF tracing ({}): the lessons that need it will report \
                 themselves unsupported",
                kernel.origin,
                no_tracing.join(", ")
            ));
        }
    }
    Ok(kernel)
}

/// The agent and each booted lesson's BPF objects.
pub(super) struct Built {
    agent: PathBuf,
    objects: Vec<Vec<BpfObject>>,
}

/// What the build stage decided: what to boot, and the outcomes it already knows.
pub(super) struct BuildStage<'a> {
    pub(super) built: Built,
    /// The lessons the guest runs, in order.
    pub(super) booted: Selected<'a>,
    /// Mistakes clang is to refuse, by number, with what clang did: they never boot.
    pub(super) compiled_out: Vec<(u32, Outcome)>,
}

pub(super) fn build<'a>(
    root: &Path,
    toolchain: &bpf::Toolchain,
    arch: Arch,
    selected: &Selected<'a>,
) -> anyhow::Result<BuildStage<'a>> {
    let agent = agent::build_agent(root, arch)?;
    interrupt::check()?;
    let work = config::work_dir();
    let mut stage = BuildStage {
        built: Built {
            agent,
            objects: Vec::new(),
        },
        booted: Vec::new(),
        compiled_out: Vec::new(),
    };
    for (lesson, parts) in selected {
        let out_root = work.join("bpf");
        let compiled = bpf::compile_lesson(lesson, arch, toolchain, &out_root);
        let compiled = match (lesson.refused_by, compiled) {
            // The mistake as shipped: clang's refusal is its outcome (failed, in clang's
            // words, which `rejected_for` then judges). Fixed, it boots like any other.
            (RefusedBy::Clang, Err(err)) => match err.downcast::<bpf::CompileError>() {
                Ok(refusal) => {
                    let outcome = Outcome::Failed(format!(
                        "clang refused {} on the host; no kernel saw it:\n{}",
                        refusal.program,
                        refusal.message()
                    ));
                    stage.compiled_out.push((lesson.number, outcome));
                    continue;
                }
                // clang missing, say: the run's error, not the lesson's outcome.
                Err(other) => Err(other),
            },
            (_, compiled) => compiled,
        };
        let mut objects = compiled?;
        objects.extend(bpf_rust::compile_lesson(
            lesson, arch, toolchain, &out_root,
        )?);
        stage.built.objects.push(objects);
        stage.booted.push((*lesson, parts.clone()));
    }
    Ok(stage)
}

/// QEMU for the guest's arch, and clang with the headers the lessons need: the host's, or
/// else unpacked into the cache.
pub(super) fn tools(
    config: &Config,
    arch: Arch,
) -> anyhow::Result<(crate::tools::Program, bpf::Toolchain)> {
    let qemu = crate::provision::qemu(config, arch)?;
    Ok((qemu, bpf::Toolchain::find(config, arch)?))
}

/// The programs for the guest besides the agent and busybox: bpftool, when a lesson
/// declares it needs it (an error if it cannot be had) or with `--shell` (where it is
/// offered: without it, the shell still works, and says so).
pub(super) fn guest_files(
    request: &RunRequest,
    config: &Config,
    booted: &Selected<'_>,
) -> anyhow::Result<Vec<initramfs::GuestFile>> {
    let needed = booted
        .iter()
        .find(|(l, _)| l.guest_tools.contains(&GuestTool::Bpftool));
    if let Some((lesson, _)) = needed {
        return guest_tools::bpftool(config, request.arch)
            .with_context(|| format!("lesson {} runs bpftool in the guest", lesson.number));
    }
    if !request.shell {
        return Ok(Vec::new());
    }
    Ok(
        guest_tools::bpftool(config, request.arch).unwrap_or_else(|e| {
            crate::term::status(format!("the shell will have no bpftool: {e:#}"));
            Vec::new()
        }),
    )
}

/// QEMU's configuration for this request, with its files in `scratch`.
pub(super) fn qemu_config(
    request: &RunRequest,
    accel: &AccelChoice,
    kernel: &KernelImage,
    scratch: &Path,
) -> QemuConfig {
    QemuConfig {
        arch: request.arch,
        accel: accel.accel,
        machine: request
            .machine
            .unwrap_or_else(|| Machine::default_for(request.arch, accel.accel, kernel.version)),
        kernel: kernel.image.clone(),
        initrd: scratch.join("initramfs.cpio"),
        memory_mib: request.memory_mib,
        channel_fifo: scratch.join("channel"),
        tsc_khz: accel::host_cpu_khz(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
        verbose_kernel: request.verbose_kernel,
        cpu: request.cpu.clone(),
        init: Init::Agent,
    }
}

/// Busybox, if the boot has it, and the kernel modules as (name, file).
pub(super) type ExtraFiles = (Option<PathBuf>, Vec<(String, PathBuf)>);

/// The files a boot adds to the initramfs: busybox for `--shell`, and the kernel modules
/// the booted lessons ask for, as the kernel's package has them.
pub(super) fn extra_files(
    request: &RunRequest,
    config: &Config,
    catalog: &Catalog,
    kernel: &KernelImage,
    booted: &Selected<'_>,
) -> anyhow::Result<ExtraFiles> {
    let busybox = request
        .shell
        .then(|| crate::image::guest_tools::busybox(config, catalog, request.arch))
        .transpose()?;
    let names: Vec<String> = booted
        .iter()
        .flat_map(|(l, _)| l.kernel_modules.iter().cloned())
        .collect();
    let modules = kernel::modules::for_kernel(config, catalog, kernel, &names)?;
    Ok((busybox, modules))
}

/// Writes the initramfs (agent, plan, objects, and the extras: busybox for `--shell`,
/// bpftool for `--shell` and the lessons that run it, BTF for a kernel without its own) where QEMU will look for it; returns its size.
pub(super) fn initramfs(
    request: &RunRequest,
    selected: &Selected<'_>,
    built: &Built,
    qemu_config: &QemuConfig,
    extras: initramfs::Extras<'_>,
) -> anyhow::Result<u64> {
    let plan = Plan {
        lessons: selected
            .iter()
            .map(|(l, parts)| LessonPlan {
                number: l.number,
                name: l.name.clone(),
                dir: l.dir_name(),
                parts: parts.clone(),
                needs: l.needs.clone(),
                part_needs: l.part_needs.clone(),
                kernel_modules: l.kernel_modules.clone(),
                loopback: l.loopback,
            })
            .collect(),
        channel: qemu_config.channel().1.to_string(),
        shell: request.shell,
        fault: request.fault,
        probe_features: request.probe_features,
    };
    let dir_names: Vec<String> = selected.iter().map(|(l, _)| l.dir_name()).collect();
    let image_lessons: Vec<initramfs::LessonObjects> = dir_names
        .iter()
        .zip(&built.objects)
        .map(|(dir, objs)| {
            let files = objs
                .iter()
                .map(|o| (o.name.as_str(), o.path.as_path()))
                .collect();
            (dir.as_str(), files)
        })
        .collect();
    let image = initramfs::build(&built.agent, &plan, &image_lessons, extras)?;
    std::fs::write(&qemu_config.initrd, &image)
        .with_context(|| format!("writing {}", qemu_config.initrd.display()))?;
    Ok(image.len() as u64)
}
