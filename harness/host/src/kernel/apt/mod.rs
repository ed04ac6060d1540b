//! An apt archive client: Debian's and Ubuntu's archives ([`distribution`]), read the
//! same way. Find the mirror, read its signed indexes, fetch and unpack packages. All
//! checks of what comes over the network happen here.

pub mod archive;
pub mod deb;
pub mod distribution;
pub mod index;
pub mod keys;
pub mod mirror;
mod resolve;
pub mod signature;
pub mod sources;
pub mod tree;
pub mod version;

pub use distribution::Distribution;
