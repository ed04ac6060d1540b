//! What each command does, one module per command family; [`crate::cli`] sends each
//! parsed command here.

pub mod bench;
pub mod doctor;
pub mod kernels;
pub mod lesson;
pub mod matrix;
pub mod new;
