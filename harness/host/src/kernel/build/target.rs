//! One kernel build, stage by stage: the toolchain, the unpacked tree, Kconfig, the
//! compile, and publishing the result into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use super::make::{command_output, run_quiet};
use super::unpack::unpack_source;
use super::{built_image, missing_options, Flavour, Fragments, BTF_FILE};
use crate::arch::Arch;
use crate::digest::sha256_bytes;
use crate::kernel::catalog::KernelSeries;
use crate::kernel::KernelImage;
use crate::sandbox::Sandbox;
use crate::{term, tools};

/// The compiler a build uses: the host's, or a cross compiler for the other arch.
pub(super) struct Toolchain {
    /// The kernel's name for the arch (`ARCH=`).
    make_arch: &'static str,
    /// `CROSS_COMPILE=` prefix, when cross-compiling.
    cross_prefix: Option<String>,
    /// `gcc --version`'s first line: part of the cache key.
    compiler: String,
}

impl Toolchain {
    /// Checks that the build tools are there (naming the package of any that is not).
    pub(super) fn find(arch: Arch) -> anyhow::Result<Toolchain> {
        // The host's compiler for its own arch, a cross compiler for the other.
        let cross =
            (Arch::host() != Some(arch)).then(|| (arch.gnu_triple(), arch.cross_gcc_package()));
        let make_arch = arch.kernel_arch();
        for (tool, package) in [
            ("make", "make"),
            ("flex", "flex"),
            ("bison", "bison"),
            ("bc", "bc"),
            ("pahole", "dwarves"),
        ] {
            tools::require(tool, package)?;
        }
        let gcc = match cross {
            Some((triple, package)) => tools::require(&format!("{triple}-gcc"), package)?,
            None => tools::require("gcc", "gcc")?,
        };
        let version = command_output(Command::new(&gcc).arg("--version"))?;
        Ok(Toolchain {
            make_arch,
            cross_prefix: cross.map(|(triple, _)| format!("{triple}-")),
            compiler: version.lines().next().unwrap_or("").to_string(),
        })
    }
}

/// One kernel to build: what it is, where it goes, with what.
pub(super) struct Target<'a> {
    pub(super) series: &'a KernelSeries,
    pub(super) flavour: Flavour,
    pub(super) arch: Arch,
    pub(super) out_dir: PathBuf,
    pub(super) toolchain: Toolchain,
    pub(super) fragments: Fragments,
}

impl Target<'_> {
    /// The cache key: everything that decides the result.
    pub(super) fn key(&self, source_sha: &str) -> String {
        let (merged, arch, compiler) =
            (&self.fragments.merged, self.arch, &self.toolchain.compiler);
        sha256_bytes(format!("{source_sha}\n{merged}\n{arch}\n{compiler}").as_bytes())
    }

    pub(super) fn is_built(&self, key: &str) -> bool {
        let dir = &self.out_dir;
        let config = std::fs::read_to_string(dir.join("config")).unwrap_or_default();
        std::fs::read_to_string(dir.join("key")).ok().as_deref() == Some(key)
            && dir.join("vmlinuz").is_file()
            // x86-64 builds with PVH publish the vmlinux booted through it, and old series
            // the BTF encoded for them; a build made before that was so is rebuilt rather
            // than booted the slow way, or without CO-RE, for ever.
            && (!self.boots_through_pvh(&config) || dir.join("vmlinux").is_file())
            && (!needs_encoded_btf(&config) || dir.join(BTF_FILE).is_file())
    }

    pub(super) fn image(&self) -> KernelImage {
        built_image(
            self.series,
            self.flavour,
            self.arch,
            &self.out_dir,
            &self.toolchain.compiler,
        )
    }

    /// Whether QEMU can boot this build's uncompressed vmlinux through its PVH entry: x86-64
    /// with `CONFIG_PVH` (5.0+; older series have no such option and boot the bzImage).
    fn boots_through_pvh(&self, dot_config: &str) -> bool {
        self.arch == Arch::X86_64 && dot_config.lines().any(|l| l == "CONFIG_PVH=y")
    }

    pub(super) fn image_target(&self) -> &'static str {
        self.arch.kernel_image_target()
    }

    /// Unpacks the source into a scratch tree, removed afterwards whatever happens (and by
    /// the next build if this process is killed), with bpflab's fragment file beside it;
    /// then hands both to the build user. The tree's own scripts run as an unprivileged
    /// user when bpflab is root (see `sandbox`), who must be able to reach the tree:
    /// root's cache is under a home only root may enter, so root builds in the temporary
    /// directory instead.
    pub(super) fn unpack(
        &self,
        tarball: &Path,
        sandbox: &Sandbox,
        cache_parent: &Path,
    ) -> anyhow::Result<tempfile::TempDir> {
        let work_parent = if sandbox.drops_privileges() {
            std::env::temp_dir()
        } else {
            cache_parent.to_path_buf()
        };
        let name = self.flavour.kernel_name(&self.series.series);
        let work = tempfile::Builder::new()
            .prefix(&crate::file_lock::scratch_prefix(&name))
            .tempdir_in(&work_parent)
            .context("creating a build directory")?;
        let spinner = term::spinner(format!("unpacking the {} source", self.series.series));
        unpack_source(tarball, &work.path().join("src"))?;
        std::fs::write(work.path().join("bpflab.config"), &self.fragments.merged)?;
        sandbox.give_tree(work.path())?;
        spinner.finish_and_clear();
        Ok(work)
    }

    /// A confined `make` in the tree.
    pub(super) fn make(&self, src: &Path, sandbox: &Sandbox, args: &[&str]) -> Command {
        let mut cmd = Command::new("make");
        cmd.current_dir(src)
            .arg(format!("ARCH={}", self.toolchain.make_arch));
        if let Some(prefix) = &self.toolchain.cross_prefix {
            cmd.arg(format!("CROSS_COMPILE={prefix}"));
        }
        // Old trees and new compilers: GCC 10 made -fno-common the default, which 4.x
        // does not link with.
        if self.series.series.starts_with("4.") {
            cmd.arg("HOSTCFLAGS=-fcommon");
        }
        cmd.args(args);
        sandbox.confine(&mut cmd);
        cmd
    }

    /// tinyconfig, bpflab's fragments merged on top, olddefconfig; then every option
    /// marked `# required` must have survived Kconfig. Returns the `.config`.
    pub(super) fn configure(
        &self,
        src: &Path,
        fragment_file: &Path,
        sandbox: &Sandbox,
    ) -> anyhow::Result<String> {
        run_quiet(self.make(src, sandbox, &["tinyconfig"]), "make tinyconfig")?;
        let mut merge = Command::new("sh");
        merge
            .current_dir(src)
            .arg("scripts/kconfig/merge_config.sh")
            .args(["-m", ".config"])
            .arg(fragment_file)
            .env("ARCH", self.toolchain.make_arch);
        sandbox.confine(&mut merge);
        run_quiet(merge, "merging bpflab's config fragments")?;
        run_quiet(
            self.make(src, sandbox, &["olddefconfig"]),
            "make olddefconfig",
        )?;
        let dot_config =
            std::fs::read_to_string(src.join(".config")).context("reading the merged .config")?;
        let dropped = missing_options(&dot_config, &self.fragments.required);
        if !dropped.is_empty() {
            let series = &self.series.series;
            bail!(
                "Kconfig dropped options bpflab needs for {series} on {} (their dependencies \
                 are not met): {}. Add what they depend on to kernel-config/ (series quirks go \
                 in kernel-config/series/{series}.config)",
                self.arch,
                dropped.join(", "),
            );
        }
        Ok(dot_config)
    }

    /// For a kernel without BTF of its own but with DWARF (a 4.x series): pahole encodes
    /// the DWARF as BTF in a file of its own, [`BTF_FILE`], which the guest gets for CO-RE
    /// (what BTFHub does for distributions' kernels). Nothing to do for other kernels.
    pub(super) fn encode_btf(
        &self,
        src: &Path,
        sandbox: &Sandbox,
        dot_config: &str,
    ) -> anyhow::Result<()> {
        if !needs_encoded_btf(dot_config) {
            return Ok(());
        }
        let spinner = term::spinner("encoding the kernel's BTF from its DWARF (pahole)");
        let mut pahole = Command::new("pahole");
        pahole
            .current_dir(src)
            .arg(format!("--btf_encode_detached={BTF_FILE}"))
            .arg("vmlinux");
        sandbox.confine(&mut pahole);
        run_quiet(pahole, "encoding BTF with pahole")?;
        spinner.finish_and_clear();
        Ok(())
    }

    /// Image, config and key, staged next to their final place (the build tree may be on
    /// another file system) and swapped in as a whole.
    pub(super) fn publish(
        &self,
        src: &Path,
        cache_parent: &Path,
        dot_config: &str,
        key: &str,
    ) -> anyhow::Result<()> {
        let name = self.flavour.kernel_name(&self.series.series);
        let staging = tempfile::Builder::new()
            .prefix(&crate::file_lock::scratch_prefix(&name))
            .tempdir_in(cache_parent)
            .context("creating a staging directory")?;
        let staged = staging.path().join("out");
        std::fs::create_dir_all(&staged)?;
        let built = src
            .join("arch")
            .join(self.toolchain.make_arch)
            .join("boot")
            .join(self.image_target());
        std::fs::copy(&built, staged.join("vmlinuz"))
            .with_context(|| format!("copying {}", built.display()))?;
        if self.boots_through_pvh(dot_config) {
            // QEMU boots an x86-64 vmlinux directly through its PVH entry: no
            // decompression, which under emulation saves more than a second. Debug info is
            // stripped; BTF, which the lessons need, is a section of its own and stays.
            let prefix = self.toolchain.cross_prefix.as_deref().unwrap_or("");
            let objcopy = format!("{prefix}objcopy");
            let mut strip = Command::new(objcopy);
            strip
                .arg("--strip-debug")
                .arg(src.join("vmlinux"))
                .arg(staged.join("vmlinux"));
            run_quiet(strip, "stripping vmlinux")?;
        }
        let btf = src.join(BTF_FILE);
        if btf.is_file() {
            std::fs::copy(&btf, staged.join(BTF_FILE))
                .with_context(|| format!("copying {}", btf.display()))?;
        }
        std::fs::write(staged.join("config"), dot_config)?;
        std::fs::write(staged.join("compiler"), &self.toolchain.compiler)?;
        std::fs::write(staged.join("key"), key)?;
        if self.out_dir.exists() {
            std::fs::remove_dir_all(&self.out_dir)
                .with_context(|| format!("removing the old {}", self.out_dir.display()))?;
        }
        std::fs::rename(&staged, &self.out_dir)
            .with_context(|| format!("moving the kernel into {}", self.out_dir.display()))
    }
}

/// A kernel with DWARF but without BTF of its own (a series older than 5.2's
/// `CONFIG_DEBUG_INFO_BTF`): bpflab encodes its BTF after the build.
fn needs_encoded_btf(dot_config: &str) -> bool {
    let has = |option: &str| dot_config.lines().any(|l| l == format!("{option}=y"));
    has("CONFIG_DEBUG_INFO") && !has("CONFIG_DEBUG_INFO_BTF")
}
