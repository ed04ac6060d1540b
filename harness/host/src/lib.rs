//! bpflab: run eBPF lessons inside QEMU guests, on any kernel, without root.
//!
//! The pipeline, one module per stage: [`catalog`] → [`kernel`] (via [`debian`] and
//! [`fetch`]) → [`agent_build`] and [`bpf_build`] → [`initramfs`] → [`qemu`] / [`vm`] →
//! events ([`bpflab_protocol`]) → [`ui`] or [`normalize`] for snapshots. [`run`] wires
//! them together.
#![deny(missing_docs)]

pub mod accel;
pub mod agent_build;
pub mod arch;
pub mod bench;
pub mod bpf_build;
pub mod cache_lock;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod debian;
pub mod fetch;
pub mod guest_text;
pub mod guest_tools;
pub mod initramfs;
pub mod interrupt;
pub mod kernel;
pub mod kernel_build;
pub mod kernel_check;
pub mod lessons;
pub mod lock;
pub mod matrix;
pub mod normalize;
pub mod openpgp;
pub mod peers;
pub mod qemu;
pub mod run;
pub mod sandbox;
pub mod tools;
pub mod ui;
pub mod vm;
