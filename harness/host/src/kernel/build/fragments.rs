//! bpflab's config fragments (`kernel-config/`): merged per series, flavour and arch, and
//! the options marked `# required` checked after Kconfig has run.

use anyhow::Context as _;

use super::Flavour;
use crate::arch::Arch;
use crate::config;
use crate::kernel::catalog::KernelSeries;

/// The merged fragments and the options they require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragments {
    /// `CONFIG_X=y` lines, comments removed, in merge order.
    pub merged: String,
    /// Options marked `# required`.
    pub required: Vec<String>,
}

/// Reads base, packets, arch, flavour and series fragments from `kernel-config/`: the series'
/// quirks (`series/<series>.config`) and its quirks on one arch
/// (`series/<series>-<arch>.config`), when there are any.
pub fn fragments(series: &KernelSeries, flavour: Flavour, arch: Arch) -> anyhow::Result<Fragments> {
    let dir = config::source_root().join("kernel-config");
    let mut texts = Vec::new();
    // Series quirks come last: they may have to override what the others ask for.
    let names = [
        Some("base.config".to_string()),
        Some("packets.config".to_string()),
        Some(format!("{}.config", arch.name())),
        flavour.fragment().map(str::to_string),
        Some(format!("series/{}.config", series.series)),
        Some(format!("series/{}-{}.config", series.series, arch.name())),
    ];
    for name in names.into_iter().flatten() {
        let path = dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name.starts_with("series/") => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(parse_fragments(&texts.join("\n")))
}

/// What a later fragment writes to take back an earlier one's `# required`, for an option
/// an old series or an arch cannot have: `# not required: CONFIG_X CONFIG_Y (why)`.
const NOT_REQUIRED: &str = "# not required:";

/// Strips comments (Kconfig does not accept them after a value) and collects the
/// options marked `# required`, less those a later line says are not.
pub fn parse_fragments(text: &str) -> Fragments {
    let mut merged = String::new();
    let mut required = Vec::new();
    let mut not_required = Vec::new();
    for line in text.lines() {
        if let Some(names) = line.trim().strip_prefix(NOT_REQUIRED) {
            not_required.extend(
                names
                    .split_whitespace()
                    .filter(|w| w.starts_with("CONFIG_"))
                    .map(|w| w.trim_end_matches([',', '.', ';']).to_string()),
            );
            continue;
        }
        let (setting, comment) = match line.split_once('#') {
            Some((s, c)) => (s.trim(), c.trim()),
            None => (line.trim(), ""),
        };
        if setting.is_empty() {
            continue;
        }
        merged.push_str(setting);
        merged.push('\n');
        if comment == "required" {
            if let Some((name, _)) = setting.split_once('=') {
                required.push(name.to_string());
            }
        }
    }
    required.retain(|name| !not_required.contains(name));
    Fragments { merged, required }
}

/// Required options that are not `=y` in a `.config`.
pub fn missing_options(dot_config: &str, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|name| !dot_config.lines().any(|l| l == format!("{name}=y")))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::kernel::catalog::Catalog;

    #[test]
    fn fragments_lose_comments_and_name_their_required_options() {
        let f = parse_fragments(
            "# header\nCONFIG_BPF=y\nCONFIG_KPROBES=y  # required\n\nCONFIG_X=n # why\n",
        );
        assert_eq!(f.merged, "CONFIG_BPF=y\nCONFIG_KPROBES=y\nCONFIG_X=n\n");
        assert_eq!(f.required, ["CONFIG_KPROBES"]);
    }

    #[test]
    fn a_later_fragment_can_take_back_a_requirement() {
        let f = parse_fragments(
            "CONFIG_KPROBES=y  # required\nCONFIG_BPF=y  # required\n\
             # not required: CONFIG_KPROBES, CONFIG_KRETPROBES (arm64: 4.10)\n",
        );
        assert_eq!(f.required, ["CONFIG_BPF"]);
        assert_eq!(f.merged, "CONFIG_KPROBES=y\nCONFIG_BPF=y\n");
    }

    #[test]
    fn dropped_options_are_listed() {
        let dot_config = "CONFIG_BPF_SYSCALL=y\n# CONFIG_KPROBES is not set\n";
        let required = vec![
            "CONFIG_BPF_SYSCALL".to_string(),
            "CONFIG_KPROBES".to_string(),
        ];
        assert_eq!(missing_options(dot_config, &required), ["CONFIG_KPROBES"]);
    }

    #[test]
    fn the_shipped_fragments_require_what_the_lessons_need() {
        let catalog = Catalog::load(&config::source_root().join("images/catalog.toml")).unwrap();
        let f = fragments(catalog.find("6.1").unwrap(), Flavour::Minimal, Arch::X86_64).unwrap();
        for needed in [
            "CONFIG_BPF_SYSCALL",
            "CONFIG_KPROBES",
            "CONFIG_DEBUG_INFO_BTF",
            "CONFIG_SERIAL_8250_CONSOLE",
        ] {
            assert!(
                f.required.iter().any(|r| r == needed),
                "{needed} not required"
            );
        }
        let arm = fragments(catalog.find("6.1").unwrap(), Flavour::Minimal, Arch::Arm64).unwrap();
        assert!(arm
            .required
            .iter()
            .any(|r| r == "CONFIG_SERIAL_AMBA_PL011_CONSOLE"));
    }
}
