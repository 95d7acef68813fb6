//! Memory accounting: what each piece of state a domain makes the service hold costs, in
//! bytes of dom0 heap, and the refusal counters.
//!
//! C xenstored charges every node, watch, transaction and queued message to a domain and
//! refuses with `ENOMEM` past a hard memory quota (2.5 MiB by default; XSA-326 /
//! CVE-2022-42314..42318 follow-ups in `domain.c`, `ACC_MEM`). Here the charge of an object is
//! its payload (path, value, permissions, token, message bytes) plus a fixed overhead that is
//! an upper bound of what the containers holding it allocate: a B-tree leaf of this crate's maps
//! holds at most 11 entries and at least 5 after a split, so one entry costs at most a fifth
//! of a leaf plus its share of internal nodes; a map holding one entry allocates a whole leaf,
//! which the per-object constants also cover. `toolstack/tests/memory.rs` checks these bounds
//! against a counting allocator: what a domain makes dom0 hold never exceeds what it is charged.

use alloc::vec::Vec;

use super::wire::{HEADER_LEN, XENSTORE_PAYLOAD_MAX, XsError};

/// One committed node beyond its bytes: its entry in the tree map (a `String` key and a
/// `Node` of 80 bytes; a leaf holds ≤ 11 and ≥ 5 of them, ~1.2 KiB) and its name's entry in
/// its parent's child set (a lone child allocates a whole 280-byte leaf).
pub const NODE_OVERHEAD: u64 = 288 + 288;
/// Bytes of one permission entry (`Perm` is a `u16` and a one-byte class, padded to 4).
pub const PERM_BYTES: u64 = 4;
/// A node staged in a transaction (overlay entry; a lone entry's leaf is in [`TX_OVERHEAD`]).
pub const STAGED_OVERHEAD: u64 = 288;
/// One child name in a staged node's cloned child set (its leaf share), plus the set's first
/// leaf per staged node with children.
pub const STAGED_CHILD: u64 = 64;
pub const STAGED_CHILD_SET: u64 = 288;
/// One node a transaction has looked at (generation record).
pub const READ_OVERHEAD: u64 = 96;
/// One node a transaction changed (the watch record fired at commit).
pub const CHANGE_OVERHEAD: u64 = 128;
/// An open transaction: its entry and the first leaf of each of its maps.
pub const TX_OVERHEAD: u64 = 4096;
/// One watch (three buffers in a `Vec` that may be twice the needed size, and the domain's
/// entry in the watch map).
pub const WATCH_OVERHEAD: u64 = 512;
/// One message queued for a domain's ring: its buffer header in a `VecDeque` that may be
/// twice as large as needed.
pub const QUEUED_OVERHEAD: u64 = 64;
/// The largest message a connection can hold (header + payload).
pub const MAX_MESSAGE: u64 = (HEADER_LEN + XENSTORE_PAYLOAD_MAX) as u64;
/// Kept out of a domain's own requests for dom0's writes into the domain's nodes
/// (`control/shutdown` and friends), so they never push the domain over its limit.
pub const DOM0_SLACK: u64 = 4096;

/// Charge of a committed node.
pub fn node_cost(path_len: usize, value_len: usize, perms: usize, name_len: usize) -> u64 {
    NODE_OVERHEAD + (path_len + value_len + name_len) as u64 + perms as u64 * PERM_BYTES
}

/// Charge of a node staged in a transaction (a clone of the node with its child set).
pub fn staged_cost(
    path_len: usize,
    value_len: usize,
    perms: usize,
    children: usize,
    children_len: usize,
) -> u64 {
    let set = if children == 0 {
        0
    } else {
        STAGED_CHILD_SET + children as u64 * STAGED_CHILD + children_len as u64
    };
    STAGED_OVERHEAD + (path_len + value_len) as u64 + perms as u64 * PERM_BYTES + set
}

/// The most one domain's connection can hold: queued messages (at most `max_output_bytes`
/// of them, plus a reply for a request read while they fitted), the queue's slots (a
/// `VecDeque` of at most `max_pending` 32-byte slots, up to twice that capacity), and the
/// request being assembled.
pub fn output_reserve(max_output_bytes: usize, max_pending: usize) -> u64 {
    max_output_bytes as u64 + 2 * MAX_MESSAGE + 2 * QUEUED_OVERHEAD * max_pending as u64
}

/// A copy of `src` that fails with `ENOMEM` instead of aborting when the heap is exhausted.
pub fn try_copy(src: &[u8]) -> Result<Vec<u8>, XsError> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len()).map_err(|_| XsError::NoMem)?;
    v.extend_from_slice(src);
    Ok(v)
}

/// Why a request was refused (or output held back), for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The domain's memory quota (`ENOMEM`).
    MemoryQuota,
    /// The cap on what all DomUs together may hold (`ENOMEM`).
    GlobalCap,
    /// dom0's heap could not give the bytes (`ENOMEM`).
    Allocation,
    /// Too many nodes (`ENOSPC`).
    NodeQuota,
    /// Value too large (`ENOSPC`).
    ValueSize,
    /// Path too deep or too long (`ENOSPC`/`EINVAL`).
    PathSize,
    /// Too many permission entries (`ENOSPC`).
    PermQuota,
    /// Too many open transactions, or too many nodes in one (`ENOSPC`).
    TransactionQuota,
    /// Too many watches (`E2BIG`).
    WatchQuota,
    /// Not allowed (`EACCES`/`EPERM`).
    Permission,
    /// A watch event dropped: the domain's output queue was full (the guest does not read).
    EventDropped,
    /// Its requests were left in its ring: too many replies unread (outstanding quota).
    ReadHeld,
}

impl Refusal {
    pub const ALL: [Refusal; 12] = [
        Refusal::MemoryQuota,
        Refusal::GlobalCap,
        Refusal::Allocation,
        Refusal::NodeQuota,
        Refusal::ValueSize,
        Refusal::PathSize,
        Refusal::PermQuota,
        Refusal::TransactionQuota,
        Refusal::WatchQuota,
        Refusal::Permission,
        Refusal::EventDropped,
        Refusal::ReadHeld,
    ];

    /// One line of the report, e.g. `"xenstore: ENOMEM memory quota"`.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::MemoryQuota => "xenstore: ENOMEM memory quota",
            Refusal::GlobalCap => "xenstore: ENOMEM all-DomU cap",
            Refusal::Allocation => "xenstore: ENOMEM allocation failed",
            Refusal::NodeQuota => "xenstore: ENOSPC node quota",
            Refusal::ValueSize => "xenstore: ENOSPC value size",
            Refusal::PathSize => "xenstore: path too deep or long",
            Refusal::PermQuota => "xenstore: ENOSPC permission entries",
            Refusal::TransactionQuota => "xenstore: ENOSPC transaction quota",
            Refusal::WatchQuota => "xenstore: E2BIG watch quota",
            Refusal::Permission => "xenstore: EACCES/EPERM",
            Refusal::EventDropped => "xenstore: watch events dropped, output queue full",
            Refusal::ReadHeld => "xenstore: requests held, replies unread",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Counts as a refused request (the last two are about output, not requests).
    pub fn is_request(self) -> bool {
        !matches!(self, Refusal::EventDropped | Refusal::ReadHeld)
    }
}

/// Per-domain counters of [`Refusal`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusals([u64; 12]);

impl Refusals {
    pub fn add(&mut self, r: Refusal) {
        self.add_n(r, 1);
    }

    pub fn add_n(&mut self, r: Refusal, n: u64) {
        let c = &mut self.0[r.index()];
        *c = c.saturating_add(n);
    }

    pub fn get(&self, r: Refusal) -> u64 {
        self.0[r.index()]
    }

    /// Requests refused (quota, memory, permission, size).
    pub fn requests(&self) -> u64 {
        Refusal::ALL
            .iter()
            .filter(|r| r.is_request())
            .map(|r| self.get(*r))
            .fold(0u64, u64::saturating_add)
    }

    /// One line per class that happened: `"<what> x <count>"` (at most 12 lines).
    pub fn lines(&self) -> Vec<alloc::string::String> {
        Refusal::ALL
            .iter()
            .filter(|r| self.get(**r) > 0)
            .map(|r| alloc::format!("{} x {}", r.describe(), self.get(*r)))
            .collect()
    }
}

/// What the service holds for one domain and what it refused, for the report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// Bytes charged now (nodes, watches, transactions, connection).
    pub bytes: u64,
    /// Most bytes charged at once (sampled after every request and queued message).
    pub peak_bytes: u64,
    pub refusals: Refusals,
}

/// What committing one staged node allocates: its share of the tree map's leaves (the node
/// itself is moved, not copied) and its record in the list of changes to fire.
pub const COMMIT_PER_NODE: u64 = 288 + 64;
/// A request's own transient buffers: the message, its reply, the reply's wire form, paths.
pub const REQUEST_FIXED: u64 = 3 * MAX_MESSAGE + 8192;

/// The most one request allocates that is not charged to the domain that sent it, whatever
/// the number of watches and changes: `max_tx_nodes × 352 + 20 KiB` (≈ 372 KiB with the
/// defaults, for a TRANSACTION_END of 1,024 nodes). Watch events come on top, but each is
/// built only if its receiver's queue has room, and is charged to that receiver, so they add
/// at most the free output room of the receivers (`max_output_bytes` each).
pub fn request_bound(q: &super::Quota) -> u64 {
    q.max_tx_nodes as u64 * COMMIT_PER_NODE + REQUEST_FIXED
}
