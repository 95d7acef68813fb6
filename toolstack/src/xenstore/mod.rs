//! The xenstore service: wire protocol, node store with permissions, watches, transactions and
//! quotas, and the shared-ring connection logic. Pure logic: no hypercalls and no raw memory;
//! dom0 maps each domain's ring page and hands it in through [`RingPage`].
//!
//! Reference: `docs/misc/xenstore.txt`, `xen/include/public/io/xs_wire.h` and the behaviour of
//! C xenstored 4.17 (`tools/xenstored/` in Xen's tree). Deliberate choices:
//! * A released domain's nodes are deleted with their subtrees wherever they are (C
//!   xenstored's default for orphans), and the domain is struck from every other node's
//!   permissions (XSA-322); the toolstack removes `/local/domain/<id>` itself.
//! * Memory accounting (see [`account`]): every byte a domain makes the service hold (nodes,
//!   values, paths, permissions, watches and tokens, open transactions and what they stage,
//!   queued replies and events, the request being read) is charged to it. A domain's own
//!   requests may make it hold at most `max_bytes − output_reserve − 4 KiB` (`ENOMEM` past
//!   that, as C's `ACC_MEM`); its output queue is bounded by `max_output_bytes` and lives in
//!   the reserve, so the charge never exceeds `max_bytes`. All DomUs together are held to
//!   [`Store::set_global_limit`] (dom0 sets it to a quarter of its free heap).
//! * Quota errors: too many nodes, too large a value, too deep a path, too many transactions,
//!   too many permission entries or nodes touched in one transaction → `ENOSPC`; too many
//!   watches → `E2BIG` (as C xenstored).
//! * Transactions are optimistic: they read through to the live tree, remember the generation
//!   of every node they look at, and fail with `EAGAIN` at commit if any of them changed.

pub mod account;
mod path;
mod perms;
mod ring;
mod store;
mod tree;
mod wire;

#[cfg(test)]
mod tests;

pub use account::{DomainStats, Refusal, Refusals};
pub use path::{ClientPath, canonicalize, domain_path};
pub use perms::{Access, Perm, Perms};
pub use ring::{Connection, RingError, RingPage, Server, XENSTORE_RING_SIZE, ring_layout};
pub use store::{
    DomainEvent, DomainInfo, INTRODUCE_DOMAIN, Outbox, RELEASE_DOMAIN, Reply, Store, reply_result,
};
pub use wire::{
    HEADER_LEN, Header, Message, MsgType, ProtoError, Request, XENSTORE_ABS_PATH_MAX,
    XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XsError, split_args,
};

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// First reserved domain id (`DOMID_FIRST_RESERVED`); nothing at or above can be introduced.
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// Default per-domain memory limit: C xenstored's 2.5 MiB (`ACC_MEM`).
pub const DEFAULT_MAX_BYTES: u64 = 2560 * 1024;

/// Per-domain limits (dom0 is exempt). Defaults follow C xenstored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own.
    pub max_nodes: u32,
    /// Largest value a domain may write.
    pub max_value_len: usize,
    /// Watches per domain.
    pub max_watches: usize,
    /// Open transactions per domain.
    pub max_transactions: usize,
    /// Messages queued for a domain's ring before further watch events are dropped.
    pub max_pending: usize,
    /// Replies queued and not yet in the ring before the domain's requests are left in its
    /// ring (C xenstored's `quota-outstanding`, 20).
    pub max_outstanding: usize,
    /// Bytes queued for a domain's ring (replies and events) before its requests are left in
    /// its ring and further watch events are dropped.
    pub max_output_bytes: usize,
    /// Hard limit of the bytes charged to a domain (C xenstored's `ACC_MEM`, 2.5 MiB).
    pub max_bytes: u64,
    /// Deepest path (in components) a domain may create.
    pub max_depth: usize,
    /// Permission entries per node set by a domain.
    pub max_perms: usize,
    /// Nodes one transaction may touch.
    pub max_tx_nodes: usize,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_nodes: 1000,
            max_value_len: 2048,
            max_watches: 128,
            max_transactions: 10,
            max_pending: 1024,
            max_outstanding: 20,
            max_output_bytes: 64 * 1024,
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: 64,
            max_perms: 5,
            max_tx_nodes: 1024,
        }
    }
}
