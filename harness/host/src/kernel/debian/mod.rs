//! Kernels from Debian's archive: find the mirror, read its indexes, fetch and unpack
//! packages. All checks of what comes over the network happen here.

pub mod archive;
pub mod deb;
pub mod index;
pub mod mirror;
pub mod signature;
