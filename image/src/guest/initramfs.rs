//! The DomU's initramfs: a newc cpio writer, busybox and the `/init` script the tests read.

use super::*;

/// The newc ("070701") cpio writer: entries in the order given, then `TRAILER!!!`.
/// Times are 0 and owners root, so the same inputs give the same bytes.
#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

impl CpioWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::from("070701");
        for f in fields {
            let _ = write!(header, "{f:08X}");
        }
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    /// A directory; `perm` is e.g. `0o755`.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }
}

/// `/init`: see the module documentation. Every command goes through `/bin/busybox`, so no
/// applet links are needed.
/// `/sbin/poweroff` in the initramfs.
pub const POWEROFF_SCRIPT: &str =
    "#!/bin/busybox sh\necho 'DOMU-INIT: poweroff requested'\nexec /bin/busybox poweroff -f\n";

pub const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# DomU init for the Rust PVH dom0's tests (written by image/src/guest.rs).
bb=/bin/busybox
$bb mount -t devtmpfs devtmpfs /dev 2>/dev/null
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys

cpus=0
online=$($bb cat /sys/devices/system/cpu/online 2>/dev/null)
for r in $(echo "$online" | $bb tr ',' ' '); do
    case $r in
        *-*) cpus=$((cpus + ${r#*-} - ${r%-*} + 1)) ;;
        *) cpus=$((cpus + 1)) ;;
    esac
done
[ "$cpus" -gt 0 ] || cpus=$($bb nproc)
echo "DOMU-INIT: up $($bb uname -r) vcpus=$cpus"

# One XS_WRITE (type 11) through xenbus_dev_frontend: a 16-byte header
# {u32 type, u32 req_id, u32 tx_id, u32 len}, then "<path>\0<value>".
le32() {
    for s in 0 8 16 24; do
        printf "\\$(printf %03o $((($1 >> s) & 255)))"
    done
}
# Runs in a subshell ($(...)): a failed `exec` must not end init.
xs_write() {
    [ -e /dev/xen/xenbus ] || return 1
    exec 3<>/dev/xen/xenbus || return 1
    len=$((${#1} + 1 + ${#2}))
    { le32 11; le32 1; le32 0; le32 $len; printf '%s\000%s' "$1" "$2"; } >&3
    # The reply: a 16-byte header and "OK\0" (an error name is longer).
    $bb timeout 10 $bb dd bs=1 count=19 <&3 2>/dev/null | $bb tr -cd 'A-Za-z'
}
reply=$(xs_write data/init "hello from init" 2>/dev/null)
case $reply in
    *OK*) echo "DOMU-INIT: xenstore write ok" ;;
    *) echo "DOMU-INIT: xenstore write failed${reply:+ ($reply)}" ;;
esac

cmdline=" $($bb cat /proc/cmdline) "
arg() {
    v=${cmdline##* $1=}
    [ "$v" = "$cmdline" ] && return 1
    echo "${v%% *}"
}
# domu-ip=ADDR/PREFIX|dhcp [domu-ping=PEER]: bring up eth0 (netfront, a module in Debian's
# kernel), with that address or a DHCP lease, and ping the peer through dom0's switch.
# domu-nic=virtio: the bench's baseline (QEMU without Xen): load the virtio-net modules
# listed in /lib/modules/virtio/order instead of netfront.
if ip=$(arg domu-ip); then
    if [ "$(arg domu-nic)" = virtio ]; then
        for m in $($bb cat /lib/modules/virtio/order 2>/dev/null); do
            $bb insmod "/lib/modules/virtio/$m" || echo "DOMU-INIT: insmod $m failed"
        done
    else
        $bb insmod /lib/modules/xen-netfront.ko || echo "DOMU-INIT: insmod xen-netfront failed"
    fi
    n=0
    while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do $bb sleep 0.1; n=$((n + 1)); done
    if [ -e /sys/class/net/eth0 ] && [ "$ip" = dhcp ]; then
        # domu-ip=dhcp: a lease from the network dom0 bridges the vif onto (its NIC uplink).
        $bb ip link set eth0 up
        printf '#!/bin/busybox sh\ncase $1 in bound|renew)\n/bin/busybox ifconfig $interface $ip netmask $subnet up\n[ -n "$router" ] && /bin/busybox route add default gw ${router%%%% *} dev $interface\necho "$ip" > /tmp/lease;;\nesac\n' > /tmp/dhcp.sh
        $bb chmod +x /tmp/dhcp.sh
        $bb udhcpc -i eth0 -s /tmp/dhcp.sh -q -n -t 20 -T 2 >/dev/null 2>&1
        if [ -s /tmp/lease ]; then
            echo "DOMU-INIT: eth0 $($bb cat /sys/class/net/eth0/address) dhcp $($bb cat /tmp/lease)"
        else
            echo "DOMU-INIT: eth0 $($bb cat /sys/class/net/eth0/address) dhcp failed"
        fi
    elif [ -e /sys/class/net/eth0 ]; then
        $bb ip addr add "$ip" dev eth0
        $bb ip link set eth0 up
        echo "DOMU-INIT: eth0 $($bb cat /sys/class/net/eth0/address) $ip"
    else
        echo "DOMU-INIT: no eth0"
    fi
    if peer=$(arg domu-ping); then
        ok=no
        n=0
        while [ $n -lt 30 ]; do
            if $bb ping -c 1 -W 1 "$peer" >/dev/null 2>&1; then ok=yes; break; fi
            n=$((n + 1))
        done
        if [ $ok = yes ]; then
            echo "DOMU-INIT: ping $peer ok ($($bb ping -c 3 -W 2 -q "$peer" | $bb tail -n 1))"
        else
            echo "DOMU-INIT: ping $peer failed"
        fi
    fi
fi
# Seconds since boot with 10 ms resolution (busybox `date` has whole seconds only).
now_s() { $bb cut -d ' ' -f 1 /proc/uptime; }
# The kernel's TCP counters so far (/proc/net/snmp and /proc/net/netstat: a header line, then
# a value line): what a slow transfer spent its time on (retransmissions, timeouts), and when
# CUBIC's HyStart ended slow start (how often, by the ACK train or the delay rule, and the sum
# of the congestion windows it left at: Linux then sizes its GSO packets by a 1.2x pacing rate
# instead of 2x).
tcp_stats() {
    $bb awk '/^Tcp:|^TcpExt:/ { if (!($1 in h)) { h[$1] = $0; next }
        n = split(h[$1], k); for (i = 2; i <= n; i++) v[k[i]] = $i }
        END { printf "OutSegs=%s RetransSegs=%s TCPTimeouts=%s TCPFastRetrans=%s TCPLossProbes=%s DelayedACKs=%s TCPOFOQueue=%s TCPHystartTrainDetect=%s TCPHystartTrainCwnd=%s TCPHystartDelayDetect=%s TCPHystartDelayCwnd=%s", v["OutSegs"], v["RetransSegs"], v["TCPTimeouts"], v["TCPFastRetrans"], v["TCPLossProbes"], v["DelayedACKs"], v["TCPOFOQueue"], v["TCPHystartTrainDetect"], v["TCPHystartTrainCwnd"], v["TCPHystartDelayDetect"], v["TCPHystartDelayCwnd"] }' \
        /proc/net/snmp /proc/net/netstat
}
# This vCPU's time so far (/proc/stat's first line, 10 ms ticks): busy (user, nice, system,
# irq, softirq), idle (idle, iowait) and steal (runnable while Xen ran another domain).
cpu_ticks() { $bb awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6, $9; exit }' /proc/stat; }
# The ticks since a cpu_ticks snapshot ($1): where a transfer's time went on this side.
cpu_since() {
    set -- $1 $(cpu_ticks)
    echo "busy=$(($4 - $1)) idle=$(($5 - $2)) steal=$(($6 - $3))"
}
# dom0's live counters and the CPU time Xen gives each domain so far (`/cpu.txt` on dom0's web
# server at $1): one line of key=value; read before and after a transfer, the differences say
# where the time went (domu-dom0-cpu=ADDR).
dom0_cpu() {
    (printf 'GET /cpu.txt HTTP/1.0\r\nHost: %s\r\n\r\n' "$1"; $bb sleep 2) |
        $bb timeout 10 $bb nc "$1" 80 2>/dev/null | $bb tail -n 1 | $bb tr -d '\r'
}
cpu_at=$(arg domu-dom0-cpu) || cpu_at=
# The TCP connection to or from PORT as /proc/net/tcp shows it: congestion window (segments),
# slow-start threshold (-1: still in the first slow start), retransmission timeout, and the
# send and receive queues (hex bytes: sent but not acknowledged, received but not read).
tcp_conn() {
    $bb awk -v p="$(printf ':%04X' "$1")" '($2 ~ p "$" || $3 ~ p "$") && $4 == "01" {
        printf "cwnd=%s ssthresh=%s rto=%sms queues=%s ", $16, $17, $13 * 10, $5 }' /proc/net/tcp
}
# domu-dom0=ADDR: ping dom0's own address 100 times and fetch its report as printed at ready
# over HTTP (/ready.json);
# domu-dom0-send=MIB then sends MIB MiB to dom0's discard port (9) and says how long it took.
if d0=$(arg domu-dom0); then
    $bb ping -c 1 -W 5 "$d0" >/dev/null 2>&1
    out=$($bb ping -c 100 -A -W 5 -q "$d0" 2>&1)
    res=$(echo "$out" | $bb grep 'packets transmitted')
    rtt=$(echo "$out" | $bb grep 'round-trip')
    echo "DOMU-INIT: dom0 ping: $res; $rtt"
    # busybox-static's wget crashes in glibc's static resolver: HTTP/1.0 by hand over nc (its
    # stdin held open until dom0 closes the connection after the body).
    (printf 'GET /ready.json HTTP/1.0\r\nHost: %s\r\n\r\n' "$d0"; $bb sleep 3) |
        $bb timeout 30 $bb nc "$d0" 80 > /tmp/http 2>/dev/null
    status=$($bb head -n 1 /tmp/http | $bb tr -d '\r')
    $bb sed '1,/^\r$/d' /tmp/http > /tmp/report.json
    sum=$($bb md5sum < /tmp/report.json)
    echo "DOMU-INIT: dom0 ready.json: $status, md5 ${sum%% *}, $($bb wc -c < /tmp/report.json) bytes"
    if mib=$(arg domu-dom0-send); then
        $bb dd if=/dev/urandom of=/tmp/blob bs=1048576 count="$mib" 2>/dev/null
        [ -n "$cpu_at" ] && echo "DOMU-INIT: dom0 cpu before dom0 send: $(dom0_cpu "$cpu_at")"
        t0=$(now_s)
        c0=$(cpu_ticks)
        $bb nc "$d0" 9 < /tmp/blob 2>/dev/null && ok=yes || ok=no
        c1=$(cpu_since "$c0")
        t1=$(now_s)
        [ -n "$cpu_at" ] && echo "DOMU-INIT: dom0 cpu after dom0 send: $(dom0_cpu "$cpu_at")"
        echo "DOMU-INIT: dom0 send $mib MiB $ok from $t0 to $t1"
        echo "DOMU-INIT: tcp stats after dom0 send: $(tcp_stats) $c1"
        $bb rm -f /tmp/blob
    fi
fi
# domu-fetch=HOST[:PORT]/PATH: an HTTP/1.0 GET (over nc, as above); print the status, the
# body's MD5 and size.
if url=$(arg domu-fetch); then
    hp=${url%%/*}
    path=/${url#*/}
    host=${hp%%:*}
    port=80
    [ "$hp" != "$host" ] && port=${hp#*:}
    (printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host"; $bb sleep 5) |
        $bb timeout 120 $bb nc "$host" "$port" > /tmp/fetch 2>/dev/null
    status=$($bb head -n 1 /tmp/fetch | $bb tr -d '\r')
    $bb sed '1,/^\r$/d' /tmp/fetch > /tmp/fetch.body
    sum=$($bb md5sum < /tmp/fetch.body)
    echo "DOMU-INIT: fetch $url: $status, md5 ${sum%% *}, $($bb wc -c < /tmp/fetch.body) bytes"
fi
# domu-tcp-recv=PORT: take one TCP stream on PORT and print its MD5 (busybox nc hands the
# socket to a small script). domu-tcp-send=PEER:PORT:MIB: send MIB MiB from /dev/urandom (a
# file first, so both ends hash the same bytes) to PEER:PORT, retried while the receiver is not
# listening yet, and print the MD5 of what was sent and the seconds the transfer took.
if port=$(arg domu-tcp-recv); then
    printf '#!/bin/busybox sh\n/bin/busybox md5sum > /tmp/tcp.md5\n' > /tmp/tcp-sink
    $bb chmod +x /tmp/tcp-sink
    echo "DOMU-INIT: tcp listening on $port"
    c0=$(cpu_ticks)
    $bb timeout 300 $bb nc -l -p "$port" -e /tmp/tcp-sink
    c1=$(cpu_since "$c0")
    sum=$($bb cat /tmp/tcp.md5 2>/dev/null)
    echo "DOMU-INIT: tcp received md5 ${sum%% *}"
    echo "DOMU-INIT: tcp stats after tcp received: $(tcp_stats) $c1"
fi
if dst=$(arg domu-tcp-send); then
    peer=${dst%%:*}
    rest=${dst#*:}
    port=${rest%%:*}
    mib=${rest#*:}
    $bb dd if=/dev/urandom of=/tmp/blob bs=1048576 count="$mib" 2>/dev/null
    sum=$($bb md5sum < /tmp/blob)
    # Every 10 s while it runs, the connection's state and the counters: a transfer that
    # stalls says how (the last of these lines is in the console dom0 reports).
    (while $bb sleep 10; do
        echo "DOMU-INIT: tcp progress at $(now_s) s: $(tcp_conn "$port")$(tcp_stats)"
    done) &
    watch=$!
    [ -n "$cpu_at" ] && echo "DOMU-INIT: dom0 cpu before tcp send: $(dom0_cpu "$cpu_at")"
    k=0
    sent=no
    while [ $k -lt 60 ]; do
        t0=$(now_s)
        c0=$(cpu_ticks)
        if $bb nc "$peer" "$port" < /tmp/blob 2>/dev/null; then sent=yes; break; fi
        $bb sleep 1
        k=$((k + 1))
    done
    c1=$(cpu_since "$c0")
    t1=$(now_s)
    kill $watch 2>/dev/null
    [ -n "$cpu_at" ] && echo "DOMU-INIT: dom0 cpu after tcp send: $(dom0_cpu "$cpu_at")"
    echo "DOMU-INIT: tcp sent $mib MiB md5 ${sum%% *} $sent from $t0 to $t1"
    echo "DOMU-INIT: tcp stats after tcp sent: $(tcp_stats) $c1"
    $bb rm -f /tmp/blob
fi
case $cmdline in
    *" domu-test=crash "*)
        echo "DOMU-INIT: crashing"
        exit 1
        ;;
    *" domu-test=stay "*)
        echo "DOMU-INIT: staying"
        while true; do $bb sleep 1; done
        ;;
    *" domu-test=reboot "*)
        echo "DOMU-INIT: rebooting"
        $bb reboot -f
        ;;
esac
echo "DOMU-INIT: powering off"
$bb poweroff -f
echo o > /proc/sysrq-trigger
$bb reboot -f
"#;

/// The initramfs: `/bin/busybox`, `/lib/modules/xen-netfront.ko`, `/init` ([`INIT_SCRIPT`]),
/// `/dev/console` (so init has a console before devtmpfs is mounted) and the directories
/// `/init` mounts on.
pub fn initramfs(busybox: &[u8], netfront: &[u8]) -> Vec<u8> {
    initramfs_with(busybox, netfront, &[])
}

/// [`initramfs`] plus `virtio` modules (name, bytes) in `/lib/modules/virtio/`, listed in load
/// order in its `order` file (the bench's baseline guest, `guest/virtio.rs`).
pub fn initramfs_with(busybox: &[u8], netfront: &[u8], virtio: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = CpioWriter::new();
    for d in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "sbin",
        "tmp",
    ] {
        w.dir(d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    w.file("lib/modules/xen-netfront.ko", 0o644, netfront);
    if !virtio.is_empty() {
        w.dir("lib/modules/virtio", 0o755);
        let mut order = String::new();
        for (name, bytes) in virtio {
            w.file(&format!("lib/modules/virtio/{name}"), 0o644, bytes);
            order.push_str(name);
            order.push('\n');
        }
        w.file("lib/modules/virtio/order", 0o644, order.as_bytes());
    }
    w.char_dev("dev/console", 0o600, 5, 1);
    w.file("bin/busybox", 0o755, busybox);
    w.file("init", 0o755, INIT_SCRIPT.as_bytes());
    // What Linux runs for a xenstore `control/shutdown` = "poweroff" (orderly_poweroff() runs
    // /sbin/poweroff); busybox's own applet would signal init, a shell script that would die.
    w.file("sbin/poweroff", 0o755, POWEROFF_SCRIPT.as_bytes());
    w.finish()
}

/// Writes `dir/initramfs.cpio` if it is missing or differs from [`initramfs`]`(busybox)`.
pub(super) fn write_initramfs(dir: &Path, busybox: &[u8], netfront: &[u8]) -> Result<PathBuf> {
    let path = dir.join("initramfs.cpio");
    let bytes = initramfs(busybox, netfront);
    if fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        write_atomic(&path, &bytes)?;
    }
    Ok(path)
}
