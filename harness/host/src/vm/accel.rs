//! Choosing how QEMU runs the guest: KVM when the host really offers it, TCG (software
//! emulation) otherwise.
//!
//! A `/dev/kvm` that exists is not enough: inside a VM without nested virtualisation the
//! device opens fine and then KVM_RUN spins forever. The CPU flags tell the truth at once.

use std::fmt;

use crate::arch::Arch;

/// How the guest's CPU is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's Tiny Code Generator: slower, works everywhere.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// What the user asked for with `--accel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelRequest {
    /// KVM when usable, else TCG.
    Auto,
    /// Require KVM.
    Kvm,
    /// Always emulate.
    Tcg,
}

/// The choice made and why, so the user can see it once.
#[derive(Debug, Clone)]
pub struct AccelChoice {
    /// The accelerator.
    pub accel: Accel,
    /// Why (shown when it is not KVM).
    pub reason: String,
}

/// Decides the accelerator for a guest of `arch` on this host.
pub fn choose(request: AccelRequest, arch: Arch) -> anyhow::Result<AccelChoice> {
    let kvm = kvm_usable(
        arch,
        &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
    );
    match (request, kvm) {
        (AccelRequest::Tcg, _) => Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: "--accel tcg".into(),
        }),
        (_, Ok(())) => Ok(AccelChoice {
            accel: Accel::Kvm,
            reason: "KVM available".into(),
        }),
        (AccelRequest::Kvm, Err(why)) => {
            // The reason is worded for the automatic choice, which goes on with TCG.
            let why = why
                .trim_end_matches(": using TCG")
                .trim_end_matches(": emulating with TCG");
            anyhow::bail!(
                "--accel kvm, but KVM is not usable: {why}; leave --accel out (or give \
                 --accel tcg) to run emulated, slower but the same"
            )
        }
        (AccelRequest::Auto, Err(why)) => Ok(AccelChoice {
            accel: Accel::Tcg,
            reason: why,
        }),
    }
}

/// Whether KVM can run a guest of `arch` here; if not, why. `cpuinfo` is the text of
/// `/proc/cpuinfo` (a parameter so the decision is testable).
pub fn kvm_usable(arch: Arch, cpuinfo: &str) -> Result<(), String> {
    if Arch::host() != Some(arch) {
        return Err(format!(
            "the guest is {arch}, the host is not: emulating with TCG"
        ));
    }
    let dev = std::path::Path::new("/dev/kvm");
    if !dev.exists() {
        return Err("no /dev/kvm (KVM module not loaded or not exposed): using TCG".into());
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_err()
    {
        return Err(
            "/dev/kvm is not accessible to this user (add yourself to the kvm group): using TCG"
                .into(),
        );
    }
    if arch == Arch::X86_64 && !cpu_has_virtualisation(cpuinfo) {
        return Err("/dev/kvm exists but the CPU has no vmx/svm (a VM without nested virtualisation): using TCG".into());
    }
    Ok(())
}

fn cpu_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// The host CPU's clock in kHz, from `/proc/cpuinfo`. Under TCG on the microvm machine the
/// guest kernel cannot calibrate its TSC reliably (it hangs after "Marking TSC unstable"
/// in most boots); passing `tsc_early_khz` avoids the calibration.
pub fn host_cpu_khz(cpuinfo: &str) -> Option<u64> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "cpu MHz").then(|| {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .map(|mhz| (mhz * 1000.0) as u64)
        })?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_flags_decide_nested_virtualisation() {
        assert!(cpu_has_virtualisation("flags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_virtualisation("flags\t\t: fpu svm\n"));
        assert!(!cpu_has_virtualisation("flags\t\t: fpu hypervisor sse\n"));
    }

    #[test]
    fn reads_the_clock_rate() {
        assert_eq!(
            host_cpu_khz("model name\t: X\ncpu MHz\t\t: 2445.404\n"),
            Some(2445404)
        );
        assert_eq!(host_cpu_khz("nothing here"), None);
    }

    #[test]
    fn tcg_is_always_possible() {
        let choice = choose(AccelRequest::Tcg, Arch::Arm64).unwrap();
        assert_eq!(choice.accel, Accel::Tcg);
        let other = if Arch::host() == Some(Arch::X86_64) {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        assert!(kvm_usable(other, "").unwrap_err().contains("TCG"));
    }
}
