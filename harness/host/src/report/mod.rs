//! What a person or a test sees of a run: the live view, normalised snapshots, and the
//! kernel matrix with its reports.

pub mod matrix;
pub mod normalize;
pub mod view;
