//! Spend fewer tokens per sample: cut samples short once they are judged
//! (speculative rejection, ST-BoN) or stop reasoning once probes agree (early exit).

pub mod early_exit;
pub(crate) mod spec_rejection;
pub(crate) mod st_bon;
