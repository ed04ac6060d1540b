//! bpflab: run eBPF lessons inside QEMU guests, on any kernel, without root.
//!
//! The pipeline, one folder per stage:
//!
//! - [`kernel`]: which kernel to boot ([`kernel::catalog`], pinned in [`kernel::pins`]),
//!   obtained from Debian's or Ubuntu's archive ([`kernel::apt`]), built from source
//!   ([`kernel::build`]) or given by path ([`kernel::own`]), unpacked for PVH boot
//!   ([`kernel::pvh`]), and checked ([`kernel::check`]);
//! - [`image`]: what the guest runs: the agent ([`image::agent`]), the lessons' BPF objects
//!   ([`image::bpf`]), packed into an initramfs ([`image::initramfs`]);
//! - [`provision`]: the host tools a run needs (QEMU, clang, headers), the host's or
//!   unpacked from Debian's archive into the cache;
//! - [`vm`]: QEMU's command line ([`vm::qemu`]), the accelerator ([`vm::accel`]) and the
//!   running guest, whose events ([`bpflab_protocol`]) come back line by line;
//! - [`report`]: the live view ([`report::view`]), snapshots ([`report::normalize`]) and
//!   the kernel matrix ([`report::matrix`]);
//! - [`bench`](mod@bench): where the time goes, and side by side with other tools.
//!
//! [`lessons`] finds the lessons in the source tree and [`scaffold`] makes new ones;
//! [`run`] wires one lesson run through the stages; [`cli`] parses the command line and
//! [`commands`] does what it asks.
//! Leaves that import nothing of bpflab: [`term`] (status lines, progress), [`digest`],
//! [`file_lock`], [`fetch`] (downloads), [`openpgp`], [`sandbox`], [`guest_text`],
//! [`interrupt`], [`tools`], [`arch`], [`config`], [`zstd`].
#![deny(missing_docs)]

pub mod arch;
pub mod bench;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod fetch;
pub mod file_lock;
pub mod guest_text;
pub mod image;
pub mod interrupt;
pub mod kernel;
pub mod lessons;
pub mod openpgp;
pub mod provision;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scaffold;
pub mod term;
pub mod tools;
pub mod vm;
pub mod zstd;
