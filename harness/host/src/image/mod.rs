//! What the guest runs: the agent (its `/init`), the lessons' BPF objects, the guest's
//! tools, packed into an initramfs.

pub mod agent;
pub mod bpf;
pub mod bpf_linker;
pub mod bpf_rust;
pub mod elf;
pub mod guest_tools;
pub mod initramfs;
