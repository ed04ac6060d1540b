//! Kernel features a lesson can declare it needs (`needs` and `part_needs` in its
//! `lesson.toml`). The guest probes each one on the running kernel before the lesson (or
//! the part) runs — the feature itself, never the version string — and a missing one makes
//! the lesson unsupported, naming the feature and the version that brought it.

use serde::{Deserialize, Serialize};

/// One kernel feature, as `lesson.toml` names it (`needs = ["kprobes"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// BPF programs on kprobes.
    Kprobes,
    /// BPF programs on tracepoints.
    Tracepoints,
    /// Raw tracepoint programs.
    RawTracepoints,
    /// The kernel's own BTF, which BTF-typed programs (fentry) are attached by.
    KernelBtf,
    /// BTF to resolve CO-RE relocations against: the kernel's own, or BTF bpflab encoded
    /// from the DWARF of a kernel it built.
    CoreBtf,
    /// The perf event array map, the perf buffer's kernel side.
    PerfEventArray,
    /// Per-CPU array and hash maps.
    PercpuMaps,
    /// The stack trace map (and `bpf_get_stackid`).
    StackTraceMap,
    /// LRU hash maps.
    LruHash,
    /// The BPF ring buffer.
    RingBuffer,
    /// eBPF socket filters (`SO_ATTACH_BPF`).
    SocketFilter,
    /// Packet sockets (`AF_PACKET`), which see every frame of an interface.
    PacketSockets,
    /// Ids for loaded programs and maps, and what the kernel says of each
    /// (`BPF_PROG_GET_NEXT_ID`, `BPF_OBJ_GET_INFO_BY_FD`): how bpftool finds them.
    ObjectIds,
    /// Network namespaces, which the packet lessons put the far end of their wire in.
    NetNamespaces,
    /// XDP programs, on any device (generic XDP) if not in its driver.
    Xdp,
    /// tc classifiers on a device's ingress and egress: a TCX link, or a direct-action
    /// `cls_bpf` filter on the `clsact` qdisc.
    Tc,
}

impl Feature {
    /// Every feature, in the order the book's feature table lists them.
    pub const ALL: [Feature; 16] = [
        Feature::Kprobes,
        Feature::Tracepoints,
        Feature::RawTracepoints,
        Feature::PerfEventArray,
        Feature::PercpuMaps,
        Feature::StackTraceMap,
        Feature::LruHash,
        Feature::CoreBtf,
        Feature::KernelBtf,
        Feature::RingBuffer,
        Feature::PacketSockets,
        Feature::SocketFilter,
        Feature::ObjectIds,
        Feature::NetNamespaces,
        Feature::Xdp,
        Feature::Tc,
    ];

    /// The name `lesson.toml` uses.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Kprobes => "kprobes",
            Feature::Tracepoints => "tracepoints",
            Feature::RawTracepoints => "raw-tracepoints",
            Feature::KernelBtf => "kernel-btf",
            Feature::CoreBtf => "core-btf",
            Feature::PerfEventArray => "perf-event-array",
            Feature::PercpuMaps => "percpu-maps",
            Feature::StackTraceMap => "stack-trace-map",
            Feature::LruHash => "lru-hash",
            Feature::RingBuffer => "ring-buffer",
            Feature::SocketFilter => "socket-filter",
            Feature::PacketSockets => "packet-sockets",
            Feature::ObjectIds => "object-ids",
            Feature::NetNamespaces => "net-namespaces",
            Feature::Xdp => "xdp",
            Feature::Tc => "tc",
        }
    }

    /// What it is, for the learner, with the kernel's name for it.
    pub fn what(self) -> &'static str {
        match self {
            Feature::Kprobes => "BPF programs on kprobes (BPF_PROG_TYPE_KPROBE)",
            Feature::Tracepoints => "BPF programs on tracepoints (BPF_PROG_TYPE_TRACEPOINT)",
            Feature::RawTracepoints => "raw tracepoint programs (BPF_PROG_TYPE_RAW_TRACEPOINT)",
            Feature::KernelBtf => {
                "the kernel's own BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux)"
            }
            Feature::CoreBtf => {
                "kernel BTF for CO-RE (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux; or BTF \
                 bpflab encodes when it builds the kernel)"
            }
            Feature::PerfEventArray => "the perf event array map (BPF_MAP_TYPE_PERF_EVENT_ARRAY)",
            Feature::PercpuMaps => "per-CPU maps (BPF_MAP_TYPE_PERCPU_ARRAY, _PERCPU_HASH)",
            Feature::StackTraceMap => "the stack trace map (BPF_MAP_TYPE_STACK_TRACE)",
            Feature::LruHash => "LRU hash maps (BPF_MAP_TYPE_LRU_HASH)",
            Feature::RingBuffer => "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF)",
            Feature::SocketFilter => {
                "eBPF socket filters (BPF_PROG_TYPE_SOCKET_FILTER, SO_ATTACH_BPF)"
            }
            Feature::PacketSockets => "packet sockets (AF_PACKET, CONFIG_PACKET)",
            Feature::ObjectIds => {
                "program and map ids (BPF_PROG_GET_NEXT_ID, BPF_OBJ_GET_INFO_BY_FD), which \
                 bpftool lists and dumps them by"
            }
            Feature::NetNamespaces => "network namespaces (CLONE_NEWNET, CONFIG_NET_NS)",
            Feature::Xdp => "XDP programs (BPF_PROG_TYPE_XDP), on any device through generic XDP",
            Feature::Tc => {
                "tc classifiers (BPF_PROG_TYPE_SCHED_CLS) on ingress and egress: the clsact \
                 qdisc with a direct-action bpf filter (CONFIG_NET_SCH_INGRESS, \
                 CONFIG_NET_CLS_BPF), or a TCX link"
            }
        }
    }

    /// The Linux version that brought it (per arch where they differ).
    pub fn since(self) -> &'static str {
        match self {
            Feature::Kprobes => "4.1 (on arm64 4.10, which gained kprobes)",
            Feature::Tracepoints => "4.7",
            Feature::RawTracepoints => "4.17",
            Feature::KernelBtf | Feature::CoreBtf => {
                "5.2 (distributions' kernels carry it from about 5.4)"
            }
            Feature::PerfEventArray => "4.3",
            Feature::PercpuMaps | Feature::StackTraceMap => "4.6",
            Feature::LruHash => "4.10",
            Feature::RingBuffer => "5.8",
            Feature::SocketFilter => "3.19",
            Feature::PacketSockets => "2.2",
            Feature::ObjectIds => "4.13",
            Feature::NetNamespaces => "2.6.24",
            Feature::Xdp => "4.8 (generic XDP, on devices whose driver has none, 4.12)",
            Feature::Tc => {
                "4.5 (clsact; direct-action bpf filters 4.4; TCX links 6.6), and 4.12 through \
                 aya 0.14, which attaches over netlink only with NETLINK_EXT_ACK"
            }
        }
    }

    /// The reason a lesson is unsupported on a kernel without it.
    pub fn missing(self) -> String {
        format!(
            "needs {}, new in Linux {}; this kernel has none",
            self.what(),
            self.since()
        )
    }

    /// The feature `lesson.toml` calls `name`.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_listed_once_and_named_as_serde_names_it() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(f));
            let json = serde_json::to_string(&f).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", f.name()));
        }
        let names: std::collections::BTreeSet<_> = Feature::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Feature::ALL.len());
    }

    #[test]
    fn the_reason_names_the_feature_and_its_version() {
        let reason = Feature::RingBuffer.missing();
        assert!(
            reason.contains("BPF_MAP_TYPE_RINGBUF") && reason.contains("5.8"),
            "{reason}"
        );
    }
}
