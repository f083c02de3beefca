//! KV cell accounting: reference-counted cells, so a prefix shared by forks counts once.

use super::protocol::Sess;
use super::Worker;
use std::collections::HashSet;
use std::sync::Arc;

/// Reference-counted KV cells, mirroring llama.cpp's unified cache: a forked prefix is
/// stored once; a cell is free when no sequence refers to it.
#[derive(Default)]
pub(super) struct Cells {
    refs: Vec<u32>,
    free: Vec<u32>,
    pub(super) used: usize,
    pub(super) reserved: usize,
}

impl Cells {
    pub(super) fn alloc(&mut self) -> u32 {
        self.used += 1;
        if let Some(i) = self.free.pop() {
            self.refs[i as usize] = 1;
            i
        } else {
            self.refs.push(1);
            (self.refs.len() - 1) as u32
        }
    }
    pub(super) fn share(&mut self, ids: &[u32]) {
        for &i in ids {
            self.refs[i as usize] += 1;
        }
    }
    pub(super) fn drop_all(&mut self, ids: &[u32]) {
        for &i in ids {
            let r = &mut self.refs[i as usize];
            *r -= 1;
            if *r == 0 {
                self.used -= 1;
                self.free.push(i);
            }
        }
    }
}

impl Worker {
    /// KV cells the session's sequences hold (shared prefixes counted once).
    pub(super) fn held_cells(&self, sess: &Sess) -> usize {
        let cells: HashSet<u32> = self
            .seqs
            .iter()
            .flatten()
            .filter(|s| Arc::ptr_eq(&s.sess, sess))
            .flat_map(|s| s.cells.iter().copied())
            .collect();
        cells.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shared_and_freed() {
        let mut c = Cells::default();
        let a: Vec<u32> = (0..3).map(|_| c.alloc()).collect();
        c.share(&a[..2]);
        assert_eq!(c.used, 3);
        c.drop_all(&a);
        assert_eq!(c.used, 2);
        c.drop_all(&a[..2]);
        assert_eq!(c.used, 0);
    }
}
