//! Two models on one problem: a small draft proposes, a large target decides (RSD).

pub(crate) mod rsd;
