//! The node store the tree searches (MCTS, DPTS, FastMCTS) share: an [`Arena`] of
//! [`Slot`]s linked by index (parent, children, depth), each with visit statistics, an
//! optional live branch, and a strategy's own payload; back-propagation along a path, a
//! stable [`argmax`], and max-live pruning.
//!
//! Growing and scoring the nodes' text is the parent module's job ([`crate::tree`]); the arena only keeps the
//! bookkeeping, so it is generic over the payload `P` and the live branch `L` (a
//! [`Node`] in a search, anything in a test).

use crate::tree::Node;
use std::ops::{Index, IndexMut};

/// One node of a search tree.
pub(crate) struct Slot<P, L = Node> {
    /// None at the root.
    pub parent: Option<usize>,
    /// In the order they were added.
    pub children: Vec<usize>,
    /// Steps from the root (the root is 0).
    pub depth: usize,
    /// Back-propagations that passed through this node.
    pub visits: u32,
    /// Sum of the values they carried.
    pub value_sum: f64,
    /// Released by [`Arena::prune`]: its live branch is gone for good.
    pub pruned: bool,
    /// The node's branch while it is alive (e.g. an unexpanded, unfinished leaf).
    pub live: Option<L>,
    /// What the strategy keeps per node.
    pub data: P,
}

impl<P, L> Slot<P, L> {
    /// The mean back-propagated value, None before the first visit.
    pub fn mean(&self) -> Option<f64> {
        (self.visits > 0).then(|| self.value_sum / self.visits as f64)
    }
}

/// The nodes of one search, the root at index 0; indices are stable (nothing is removed).
pub(crate) struct Arena<P, L = Node> {
    slots: Vec<Slot<P, L>>,
}

impl<P, L> Arena<P, L> {
    /// A tree holding only its root.
    pub fn new(data: P, live: Option<L>) -> Self {
        Self {
            slots: vec![Slot {
                parent: None,
                children: Vec::new(),
                depth: 0,
                visits: 0,
                value_sum: 0.0,
                pruned: false,
                live,
                data,
            }],
        }
    }

    /// Add a child of `parent` (unvisited, one step deeper) and return its index.
    pub fn push(&mut self, parent: usize, data: P, live: Option<L>) -> usize {
        let id = self.slots.len();
        let depth = self.slots[parent].depth + 1;
        self.slots[parent].children.push(id);
        self.slots.push(Slot {
            parent: Some(parent),
            children: Vec::new(),
            depth,
            visits: 0,
            value_sum: 0.0,
            pruned: false,
            live,
            data,
        });
        id
    }

    /// Nodes so far.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every node, in index order.
    pub fn iter(&self) -> std::slice::Iter<'_, Slot<P, L>> {
        self.slots.iter()
    }

    /// Back-propagate `value` from `from` to the root: each node on the way gets one
    /// visit and `value` added to its sum.
    pub fn backup(&mut self, from: usize, value: f64) {
        let mut at = Some(from);
        while let Some(i) = at {
            let s = &mut self.slots[i];
            s.visits += 1;
            s.value_sum += value;
            at = s.parent;
        }
    }

    /// Keep at most `keep` live branches among the nodes `spare` does not protect:
    /// release the rest, weakest `key` first (ties: the older node first), mark them
    /// pruned, and return them in that order. Nodes without a live branch (expanded,
    /// finished or already pruned) are neither counted nor touched.
    pub fn prune(
        &mut self,
        keep: usize,
        spare: impl Fn(usize, &Slot<P, L>) -> bool,
        key: impl Fn(&Slot<P, L>) -> f64,
    ) -> Vec<usize> {
        let mut live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].live.is_some() && !spare(i, &self.slots[i]))
            .collect();
        if live.len() <= keep {
            return Vec::new();
        }
        live.sort_by(|&a, &b| key(&self.slots[a]).total_cmp(&key(&self.slots[b])));
        live.truncate(live.len() - keep);
        for &i in &live {
            let s = &mut self.slots[i];
            s.live = None;
            s.pruned = true;
        }
        live
    }
}

impl<P, L> Index<usize> for Arena<P, L> {
    type Output = Slot<P, L>;
    fn index(&self, i: usize) -> &Slot<P, L> {
        &self.slots[i]
    }
}

impl<P, L> IndexMut<usize> for Arena<P, L> {
    fn index_mut(&mut self, i: usize) -> &mut Slot<P, L> {
        &mut self.slots[i]
    }
}

/// The item with the highest `key`, the first of equals on ties; None if there are no
/// items. NaN ranks below every number (it never wins over one), and −0 equals +0.
pub(crate) fn argmax<T>(
    items: impl IntoIterator<Item = T>,
    mut key: impl FnMut(&T) -> f64,
) -> Option<T> {
    // NaN → −∞ and −0 → +0, so total_cmp orders the keys as numbers compare.
    let rank = |x: f64| {
        if x.is_nan() {
            f64::NEG_INFINITY
        } else {
            x + 0.0
        }
    };
    let mut best: Option<(T, f64)> = None;
    for it in items {
        let k = rank(key(&it));
        if best.as_ref().is_none_or(|(_, b)| k.total_cmp(b).is_gt()) {
            best = Some((it, k));
        }
    }
    best.map(|(it, _)| it)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// root ─┬─ a ── b
    ///       └─ c
    fn small() -> (Arena<&'static str, ()>, [usize; 3]) {
        let mut t = Arena::new("root", None);
        let a = t.push(0, "a", None);
        let c = t.push(0, "c", None);
        let b = t.push(a, "b", None);
        (t, [a, b, c])
    }

    #[test]
    fn nodes_link_by_index_and_know_their_depth() {
        let (t, [a, b, c]) = small();
        assert_eq!((a, c, b), (1, 2, 3), "indices in order of creation");
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].children, vec![a, c]);
        assert_eq!(t[a].children, vec![b]);
        assert_eq!(
            (t[b].parent, t[c].parent, t[0].parent),
            (Some(a), Some(0), None)
        );
        assert_eq!(
            t.iter().map(|s| s.depth).collect::<Vec<_>>(),
            vec![0, 1, 1, 2]
        );
        assert_eq!(t[b].data, "b");
    }

    #[test]
    fn backup_adds_a_visit_and_the_value_along_the_path_only() {
        let (mut t, [a, b, c]) = small();
        t.backup(b, 0.5); // root, a, b
        t.backup(c, 1.0); // root, c
        t.backup(a, 0.25); // root, a
        let v: Vec<(u32, f64)> = t.iter().map(|s| (s.visits, s.value_sum)).collect();
        // root: 0.5 + 1.0 + 0.25; a: 0.5 + 0.25; c: 1.0; b: 0.5.
        assert_eq!(v, vec![(3, 1.75), (2, 0.75), (1, 1.0), (1, 0.5)]);
        assert_eq!(t[0].mean(), Some(1.75 / 3.0));
        assert_eq!(t[a].mean(), Some(0.375));
        let (fresh, _) = small();
        assert_eq!(fresh[b].mean(), None, "unvisited: no mean, not 0");
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        let keys = [1.0, 3.0, 3.0, 2.0];
        assert_eq!(argmax(0..4, |&i| keys[i]), Some(1));
        assert_eq!(argmax([7, 8, 9], |_| f64::INFINITY), Some(7));
        // −0 and +0 are equal: the first stays.
        let zeros = [-0.0, 0.0];
        assert_eq!(argmax(0..2, |&i| zeros[i]), Some(0));
        assert_eq!(argmax(std::iter::empty::<usize>(), |_| 1.0), None);
        // The items come back as given, not as indices.
        assert_eq!(argmax(["x", "yy", "zz"], |s| s.len() as f64), Some("yy"));
    }

    #[test]
    fn argmax_never_prefers_nan_to_a_number() {
        // Both signs of NaN: total_cmp alone would put +NaN above everything.
        for nan in [f64::NAN, -f64::NAN] {
            let keys = [nan, 1.0, nan, 2.0, nan];
            assert_eq!(argmax(0..5, |&i| keys[i]), Some(3));
            let keys = [-5.0, nan];
            assert_eq!(argmax(0..2, |&i| keys[i]), Some(0));
            let keys = [nan, f64::NEG_INFINITY];
            assert_eq!(argmax(0..2, |&i| keys[i]), Some(0), "NaN ties with −∞");
            assert_eq!(argmax(0..3, |_| nan), Some(0), "all NaN: the first");
        }
    }

    /// A root expanded into five leaves with the given values, each holding a live
    /// branch; the root itself is expanded (no branch) and scores lowest.
    fn leaves(values: &[f64]) -> (Arena<f64, Rc<()>>, Rc<()>) {
        let branch = Rc::new(());
        let mut t = Arena::new(f64::NEG_INFINITY, None);
        for &v in values {
            t.push(0, v, Some(branch.clone()));
        }
        (t, branch)
    }

    #[test]
    fn pruning_releases_the_weakest_beyond_the_limit() {
        let (mut t, branch) = leaves(&[0.5, 0.1, 0.9, 0.3, 0.7]);
        assert_eq!(Rc::strong_count(&branch), 6);
        let gone = t.prune(2, |_, _| false, |s| s.data);
        // Values 0.1, 0.3, 0.5 go (weakest first); 0.9 and 0.7 stay.
        assert_eq!(gone, vec![2, 4, 1]);
        assert_eq!(
            Rc::strong_count(&branch),
            3,
            "released branches are dropped"
        );
        let kept: Vec<usize> = (0..t.len()).filter(|&i| t[i].live.is_some()).collect();
        assert_eq!(kept, vec![3, 5]);
        for i in 1..t.len() {
            assert_eq!(t[i].pruned, gone.contains(&i));
        }
        assert!(
            !t[0].pruned,
            "the expanded root holds no branch: never pruned"
        );
        // Within the limit nothing more goes, and pruned nodes are not counted again.
        assert!(t.prune(2, |_, _| false, |s| s.data).is_empty());
        assert_eq!(t.prune(1, |_, _| false, |s| s.data), vec![5]);
        assert_eq!(Rc::strong_count(&branch), 2);
    }

    #[test]
    fn pruning_skips_spared_nodes_and_breaks_ties_by_age() {
        let (mut t, _branch) = leaves(&[0.2, 0.2, 0.0, 0.2, 0.2]);
        // Node 3 (the weakest) is spared and not counted: 4 candidates, keep 2.
        let gone = t.prune(2, |i, _| i == 3, |s| s.data);
        assert_eq!(gone, vec![1, 2], "equal values: the older goes first");
        assert!(t[3].live.is_some() && !t[3].pruned);
        assert!(t[4].live.is_some() && t[5].live.is_some());
        // NaN keys sort by total_cmp, as the strategies did: +NaN above every number.
        let (mut t, _b) = leaves(&[f64::NAN, 0.5, 0.4, 0.6, 0.1]);
        assert_eq!(t.prune(1, |_, _| false, |s| s.data), vec![5, 3, 2, 4]);
    }
}
