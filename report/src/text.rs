//! The report as text for people: one item per line, strings from outside escaped so they
//! cannot break the layout.

use super::*;

impl BootReport {
    /// The report as text for people, one item per line, each line ending in '\n'. Strings
    /// from outside (cmdlines, Xen's strings, messages) have control characters escaped so
    /// they cannot break the layout.
    pub fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(w, "dom0 boot report: {}", Clean(&self.dom0_version))?;
        match (&self.xen, self.under_xen) {
            (Some(x), _) => writeln!(w, ", under Xen {}", XenVersion(x))?,
            (None, true) => writeln!(w, ", under Xen")?,
            (None, false) => writeln!(w, ", not under Xen")?,
        }
        if let Some(x) = &self.xen {
            writeln!(
                w,
                "Xen: {}, caps \"{}\", hypercall instruction {}",
                XenVersion(x),
                Clean(&x.caps),
                Clean(&x.hypercall_insn)
            )?;
            w.write_str("Xen features:")?;
            if x.features.is_empty() {
                w.write_str(" (none)")?;
            }
            for f in &x.features {
                write!(w, " {}", Clean(f))?;
            }
            w.write_char('\n')?;
        }
        match &self.start_info {
            None => writeln!(w, "start_info: none")?,
            Some(s) => {
                write!(
                    w,
                    "start_info: at {:#x}, version {}, flags {:#x}",
                    s.paddr, s.version, s.flags
                )?;
                let names = [(1, "privileged"), (2, "initdomain")];
                let mut sep = " (";
                for (bit, name) in names {
                    if s.flags & bit != 0 {
                        write!(w, "{sep}{name}")?;
                        sep = ", ";
                    }
                }
                if sep == ", " {
                    w.write_char(')')?;
                }
                let plural = if s.nr_modules == 1 { "" } else { "s" };
                write!(w, ", {} module{plural}, rsdp ", s.nr_modules)?;
                if s.rsdp == 0 {
                    writeln!(w, "none")?;
                } else {
                    writeln!(w, "{:#x}", s.rsdp)?;
                }
            }
        }
        writeln!(w, "cmdline: \"{}\"", Clean(&self.cmdline))?;
        w.write_str("options:")?;
        if self.options.is_empty() {
            w.write_str(" (defaults)")?;
        }
        for (name, value) in &self.options {
            write!(w, " {}={}", Clean(name), Clean(value))?;
        }
        w.write_char('\n')?;

        let source = if self.memmap_source.is_empty() {
            "unknown source"
        } else {
            &self.memmap_source
        };
        let n = self.memory_map.len();
        let plural = if n == 1 { "y" } else { "ies" };
        writeln!(w, "memory map ({}, {n} entr{plural}):", Clean(source))?;
        for r in &self.memory_map {
            // Inclusive end, as Xen and Linux print e820 maps.
            let last = r.end.saturating_sub(u64::from(r.size != 0));
            writeln!(
                w,
                "  [mem {:#018x}-{:#018x}] {:>10}  {}",
                r.addr,
                last,
                Size(r.size),
                xen::memmap::MemType::from_raw(r.kind_raw)
            )?;
        }
        writeln!(
            w,
            "RAM: {} ({} bytes)",
            Size(self.ram_bytes),
            self.ram_bytes
        )?;
        // With a vCPU list, the vCPU section after ACPI says it all.
        if self.vcpu_list.is_empty() {
            writeln!(w, "vCPUs: {}", self.vcpus)?;
        }
        if self.tsc_khz == 0 {
            writeln!(w, "TSC: unknown")?;
        } else {
            writeln!(w, "TSC: {} kHz", self.tsc_khz)?;
        }
        writeln!(
            w,
            "heap: {} used of {} (peak {})",
            Size(self.heap.used),
            Size(self.heap.size),
            Size(self.heap.peak)
        )?;

        writeln!(w, "timeline (ms since entry):")?;
        let mut prev = 0u64;
        for p in &self.phases {
            let delta = p.at_ns.saturating_sub(prev);
            writeln!(
                w,
                "  {:>12}  (+{})  {}",
                Ms(p.at_ns),
                Ms(delta),
                Clean(&p.name)
            )?;
            prev = p.at_ns;
        }
        if self.phases.is_empty() {
            writeln!(w, "  (none)")?;
        }
        match &self.timer {
            None => writeln!(w, "timer: not checked")?,
            Some(t) => writeln!(
                w,
                "timer: requested {} ms, delivered after {} ms via {}",
                Ms(t.requested_ns),
                Ms(t.delivered_ns),
                Clean(&t.via)
            )?,
        }

        match &self.acpi {
            None => writeln!(w, "ACPI: none")?,
            Some(a) => a.write_text(w)?,
        }
        if let Some(c) = &self.cpu {
            c.write_text(w, self.under_xen)?;
        }
        self.write_vcpus_text(w)?;
        if let Some(s) = &self.smp {
            s.write_text(w)?;
        }
        if let Some(m) = &self.mtrr {
            m.write_text(w)?;
        }
        match &self.pci {
            None => writeln!(w, "PCI: not enumerated")?,
            Some(p) => p.write_text(w)?,
        }

        for t in &self.selftests {
            writeln!(w, "self-test: {}", Clean(t))?;
        }
        writeln!(w, "modules ({}):", self.modules.len())?;
        for m in &self.modules {
            writeln!(
                w,
                "  #{} [{:#x}, +{:#x}) {}  kind {}  status {}  cmdline \"{}\"",
                m.index,
                m.paddr,
                m.size,
                Size(m.size),
                Clean(&m.kind),
                Clean(&alloc::string::ToString::to_string(&m.status)),
                Clean(&m.cmdline)
            )?;
        }
        if let Some(t) = &self.toolstack {
            writeln!(
                w,
                "toolstack: domctl interface {:#x} ({} probe(s)), {} DomU(s), xenstore limit {} KiB per DomU ({} KiB for all)",
                t.domctl_version,
                t.domctl_probes,
                t.domus.len(),
                t.xenstore_limit_bytes / 1024,
                t.xenstore_global_limit_bytes / 1024
            )?;
            for d in &t.domus {
                writeln!(
                    w,
                    "  {} (domain {}): {}, {} MiB, {} vCPU(s), {:.2} s of CPU, {} console lines, {} xenstore requests, tsc_mode {} ({})",
                    Clean(&d.name),
                    d.domid,
                    d.state,
                    d.memory_mib,
                    d.vcpus,
                    d.cpu_time_ns as f64 / 1e9,
                    d.console_lines,
                    d.xenstore_requests,
                    Clean(&d.tsc_mode),
                    if d.tsc_emulated {
                        "rdtsc trapped"
                    } else {
                        "rdtsc native"
                    }
                )?;
                writeln!(
                    w,
                    "    xenstore: {} bytes held, peak {}, {} request(s) refused; console throttled {} time(s); at most {} fruitless wakeup(s) in 100 ms",
                    d.xenstore_bytes,
                    d.xenstore_peak_bytes,
                    d.xenstore_refused,
                    d.console_throttled,
                    d.storm_peak_wakeups
                )?;
                for r in &d.refusals {
                    writeln!(w, "    - {}", Clean(r))?;
                }
                for v in &d.vifs {
                    writeln!(
                        w,
                        "    vif {} {}: state {}, {} connect(s); tx {} pkt {} B ({} dropped, {} copy errors); rx {} pkt {} B ({} dropped, {} copy errors); {} grant copies in {} hypercalls; GSO {} pkt into {} frames ({} dropped), {} delivered whole; {} B held, backlog peak {} of {} B; {} busy passes{}",
                        v.handle,
                        Clean(&v.mac),
                        Clean(&v.state),
                        v.connects,
                        v.tx_packets,
                        v.tx_bytes,
                        v.tx_dropped,
                        v.tx_copy_errors,
                        v.rx_packets,
                        v.rx_bytes,
                        v.rx_dropped,
                        v.rx_copy_errors,
                        v.grant_copies,
                        v.copy_hypercalls,
                        v.tx_gso_packets,
                        v.tx_gso_segments,
                        v.tx_gso_dropped,
                        v.rx_gso_packets,
                        v.memory_bytes,
                        v.rx_backlog_peak_bytes,
                        v.rx_backlog_limit_bytes,
                        v.busy_passes,
                        if v.error.is_some() {
                            "; closed by dom0"
                        } else {
                            ""
                        }
                    )?;
                    if let Some(e) = &v.error {
                        writeln!(w, "      error: {}", Clean(e))?;
                    }
                }
            }
        }
        if let Some(n) = self.toolstack.as_ref().and_then(|t| t.dom0_net.as_ref()) {
            writeln!(
                w,
                "dom0 on its switch: {} ({}), {} frames in, {} out, {} dropped; echo {} B, discard {} B, {} HTTP request(s)",
                Clean(&n.address),
                Clean(&n.mac),
                n.frames_in,
                n.frames_out,
                n.dropped,
                n.echo_bytes,
                n.discard_bytes,
                n.http_requests
            )?;
            if n.dhcp {
                writeln!(
                    w,
                    "  DHCP: {} lease(s), {} lost; server {}, router {}",
                    n.dhcp_leases,
                    n.dhcp_lost,
                    Clean(if n.dhcp_server.is_empty() {
                        "-"
                    } else {
                        &n.dhcp_server
                    }),
                    Clean(if n.router.is_empty() { "-" } else { &n.router }),
                )?;
            }
        }
        if let Some(u) = &self.uplink {
            writeln!(
                w,
                "uplink {} [{}] {}: {}, link {}, MAC {}",
                Clean(&u.sbdf),
                Clean(&u.ids),
                Clean(if u.model.is_empty() {
                    "no driver"
                } else {
                    &u.model
                }),
                u.state,
                if u.link_up { "up" } else { "down" },
                Clean(if u.mac.is_empty() { "-" } else { &u.mac }),
            )?;
            if let Some(e) = &u.error {
                writeln!(w, "  error: {}", Clean(e))?;
            }
            if u.state == UplinkState::Up || u.tx_frames + u.rx_frames > 0 {
                writeln!(
                    w,
                    "  {} frames ({} B) sent, {} refused; {} frames ({} B) received, {} bad; \
                     {} doorbell writes; switch: {} flooded, {} dropped; {}",
                    u.tx_frames,
                    u.tx_bytes,
                    u.tx_dropped,
                    u.rx_frames,
                    u.rx_bytes,
                    u.rx_errors,
                    u.doorbells,
                    u.switch_flooded,
                    u.switch_dropped,
                    Clean(&u.service),
                )?;
            }
        }
        if !self.watchdog.is_empty() {
            writeln!(w, "watchdog ({})", self.watchdog.len())?;
            for s in &self.watchdog {
                writeln!(w, "  - {}", Clean(s))?;
            }
        }
        for (title, list) in [("warnings", &self.warnings), ("errors", &self.errors)] {
            write!(w, "{title} ({})", list.len())?;
            if list.is_empty() {
                w.write_str(": none")?;
            }
            w.write_char('\n')?;
            for s in list {
                writeln!(w, "  - {}", Clean(s))?;
            }
        }
        writeln!(
            w,
            "result: {}",
            if self.ready { "READY" } else { "NOT READY" }
        )
    }
}

impl AcpiSummary {
    /// "ACPI: RSDP rev 2 at 0x..., OEM "...", XSDT with N tables: ...; MADT: ..." and the
    /// problems, one per line.
    pub(crate) fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            w,
            "ACPI: RSDP rev {} at {:#x}, OEM \"{}\", ",
            self.revision,
            self.rsdp,
            Clean(&self.oem_id)
        )?;
        if self.root.is_empty() {
            w.write_str("no root table")?;
        } else {
            let n = self.tables.len();
            let plural = if n == 1 { "" } else { "s" };
            write!(w, "{} with {n} table{plural}", Clean(&self.root))?;
            if n != 0 {
                w.write_char(':')?;
                for t in &self.tables {
                    write!(w, " {}", Clean(&t.signature))?;
                }
            }
        }
        if self.tables.iter().any(|t| t.signature == "APIC") {
            let plural = |n: u32| if n == 1 { "" } else { "s" };
            write!(
                w,
                "; MADT: {} CPU{}",
                self.madt_cpus,
                plural(self.madt_cpus)
            )?;
            if !self.madt_apic_ids.is_empty() {
                let ids = if self.madt_apic_ids.len() == 1 {
                    "id"
                } else {
                    "ids"
                };
                write!(w, " (APIC {ids}")?;
                for id in &self.madt_apic_ids {
                    write!(w, " {id}")?;
                }
                w.write_char(')')?;
            }
            write!(
                w,
                ", {} IO-APIC{}, {} override{}",
                self.ioapics,
                plural(self.ioapics),
                self.overrides,
                plural(self.overrides)
            )?;
        } else {
            w.write_str("; no MADT")?;
        }
        w.write_char('\n')?;
        if !self.fadt.is_empty() {
            w.write_str("ACPI FADT:")?;
            write_words(w, &self.fadt)?;
            w.write_char('\n')?;
        }
        for m in &self.mcfg {
            writeln!(w, "ACPI MCFG: {}", Clean(m))?;
        }
        if let Some(c) = &self.container {
            write!(
                w,
                "container MADT: {} vCPU{}, APIC ids",
                c.vcpus,
                if c.vcpus == 1 { "" } else { "s" }
            )?;
            for id in &c.apic_ids {
                write!(w, " {id}")?;
            }
            if c.differences.is_empty() {
                write!(w, "; identical to {}", Clean(&c.compared_with))?;
            } else {
                write!(
                    w,
                    "; {} difference(s) from {}",
                    c.differences.len(),
                    Clean(&c.compared_with)
                )?;
            }
            if c.rewritten {
                write!(
                    w,
                    "; rewritten: RSDP {:#x}, MADT {:#x} (in use)",
                    c.rsdp, c.madt
                )?;
            }
            w.write_char('\n')?;
            for d in &c.differences {
                writeln!(w, "  - {}", Clean(d))?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(w, "ACPI problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// " a b c" (each cleaned), or " (none)".
fn write_words(w: &mut dyn fmt::Write, list: &[String]) -> fmt::Result {
    if list.is_empty() {
        return w.write_str(" (none)");
    }
    for s in list {
        write!(w, " {}", Clean(s))?;
    }
    Ok(())
}

impl CpuSummary {
    /// "CPU: AuthenticAMD family 15 model 107 stepping 1 "brand", 40-bit physical
    /// addresses", the features, and (under Xen) Xen's TSC mode and HVM flags.
    pub(crate) fn write_text(&self, w: &mut dyn fmt::Write, under_xen: bool) -> fmt::Result {
        write!(
            w,
            "CPU: {} family {} model {} stepping {}",
            Clean(&self.vendor),
            self.family,
            self.model,
            self.stepping
        )?;
        if !self.brand.is_empty() {
            write!(w, " \"{}\"", Clean(&self.brand))?;
        }
        writeln!(w, ", {}-bit physical addresses", self.phys_addr_bits)?;
        w.write_str("CPU features:")?;
        write_words(w, &self.features)?;
        w.write_char('\n')?;
        let xen_said = self.xen_tsc_mode != 0 || self.xen_tsc_emulated;
        if under_xen || xen_said || !self.xen_hvm_flags.is_empty() {
            let rdtsc = if self.xen_tsc_emulated {
                "emulated"
            } else {
                "native"
            };
            write!(
                w,
                "CPU under Xen: TSC mode {}, RDTSC {rdtsc}; HVM flags:",
                self.xen_tsc_mode
            )?;
            write_words(w, &self.xen_hvm_flags)?;
            w.write_char('\n')?;
        }
        Ok(())
    }
}

impl SmpSummary {
    /// "SMP: 3 started, IPI round trip 0.012 ms, 0 failed" and the failures, one per line.
    pub(crate) fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(w, "SMP: {} started, IPI round trip ", self.started)?;
        if self.ipi_round_trip_ns == 0 {
            w.write_str("not measured")?;
        } else {
            write!(w, "{} ms", Ms(self.ipi_round_trip_ns))?;
        }
        writeln!(w, ", {} failed", self.failed.len())?;
        for f in &self.failed {
            writeln!(w, "  - {}", Clean(f))?;
        }
        Ok(())
    }
}

impl MtrrSummary {
    /// "MTRR: enabled, default WB, 1 variable range: 0x80000000-0x100000000 UC; fixed ranges
    /// enabled; consistent across vCPUs; problems: none", then the problems, one per line.
    pub(crate) fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let on_off = |b: bool| if b { "enabled" } else { "disabled" };
        write!(
            w,
            "MTRR: {}, default {}, {} variable range{}",
            on_off(self.enabled),
            Clean(&self.default_type),
            self.variable.len(),
            if self.variable.len() == 1 { "" } else { "s" }
        )?;
        for (i, v) in self.variable.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(w, "{sep}{}", Clean(v))?;
        }
        write!(w, "; fixed ranges {}; ", on_off(self.fixed_enabled))?;
        match (self.consistent, self.corrected) {
            (true, _) => w.write_str("consistent across vCPUs")?,
            (false, true) => w.write_str("inconsistent across vCPUs, corrected")?,
            (false, false) => w.write_str("inconsistent across vCPUs, not corrected")?,
        }
        if self.problems.is_empty() {
            writeln!(w, "; problems: none")
        } else {
            writeln!(w, "; problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
            Ok(())
        }
    }
}

impl PciSummary {
    /// "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 7 functions in 0.120 ms; 0
    /// problems", the MMCFG reports, the tree, one line per function (its problems below
    /// it), then the problems of no one function.
    pub(crate) fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let n = self.functions.len();
        write!(w, "PCI: {}, segments", Clean(&self.source))?;
        write_words(w, &self.segments)?;
        let problems = self.problem_count();
        writeln!(
            w,
            "; {n} function{} in {} ms; {problems} problem{}",
            if n == 1 { "" } else { "s" },
            Ms(self.enumerate_ns),
            if problems == 1 { "" } else { "s" }
        )?;
        for m in &self.mmcfg_reserved {
            writeln!(w, "PCI mmcfg_reserved: {}", Clean(m))?;
        }
        for m in &self.bar_moves {
            writeln!(w, "PCI BAR move: {}", Clean(m))?;
        }
        for m in &self.renumber {
            writeln!(w, "PCI renumber: {}", Clean(m))?;
        }
        for m in &self.windows {
            writeln!(w, "PCI window: {}", Clean(m))?;
        }
        if !self.tree.is_empty() {
            writeln!(w, "PCI tree:")?;
            for line in self.tree.lines() {
                writeln!(w, "  {}", Clean(line))?;
            }
        }
        for f in &self.functions {
            write!(
                w,
                "  {} {:04x}:{:04x} class {:06x} {}",
                Clean(&f.sbdf),
                f.vendor,
                f.device,
                f.class,
                Clean(&f.kind)
            )?;
            if let Some(p) = &f.parent {
                write!(w, " below {}", Clean(p))?;
            }
            w.write_str("; BARs:")?;
            if f.bars.is_empty() {
                w.write_str(" none")?;
            }
            for (i, b) in f.bars.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                if b.kind == PciBarKind::Rom {
                    write!(w, "{sep}rom")?;
                } else {
                    write!(w, "{sep}{} {}", b.index, b.kind.name())?;
                }
                if b.prefetchable {
                    w.write_str(" pref")?;
                }
                write!(w, " {:#x}", b.address)?;
                if b.size != 0 {
                    write!(w, "+{:#x}", b.size)?;
                }
            }
            w.write_str("; caps:")?;
            write_list(w, &f.caps)?;
            if !f.ext_caps.is_empty() {
                w.write_str("; ext caps:")?;
                write_list(w, &f.ext_caps)?;
            }
            write!(
                w,
                "; xen add {}",
                Clean(&alloc::string::ToString::to_string(&f.xen_add))
            )?;
            if !f.device_check.is_empty() {
                write!(w, "; check: {}", Clean(&f.device_check))?;
            }
            writeln!(w)?;
            for p in &f.problems {
                writeln!(w, "    - {}", Clean(p))?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(w, "PCI problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// " a, b, c" (each cleaned), or " none".
fn write_list(w: &mut dyn fmt::Write, list: &[String]) -> fmt::Result {
    if list.is_empty() {
        return w.write_str(" none");
    }
    for (i, s) in list.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        write!(w, "{sep}{}", Clean(s))?;
    }
    Ok(())
}

impl BootReport {
    /// "vCPUs: 4 up in 3.200 ms: 0 (APIC 0) 1 (APIC 2) ...", then one line per vCPU with its
    /// timing and work, and its CPUID differences and MTRR problems indented below it.
    /// Nothing when the list is empty (the short "vCPUs: N" line stands instead).
    pub(crate) fn write_vcpus_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let list = &self.vcpu_list;
        if list.is_empty() {
            return Ok(());
        }
        let up = list.iter().filter(|v| v.up).count();
        let total = list.len().max(self.vcpus as usize);
        if up == total {
            write!(w, "vCPUs: {up} up")?;
        } else {
            write!(w, "vCPUs: {up} of {total} up")?;
        }
        if let Some(s) = &self.smp {
            write!(w, " in {} ms", Ms(s.first_up_to_last_online_ns))?;
        }
        w.write_char(':')?;
        for v in list {
            write!(w, " {} (APIC {}", v.id, v.apic_id)?;
            if !v.up {
                w.write_str(", down")?;
            }
            w.write_char(')')?;
        }
        w.write_char('\n')?;
        for v in list {
            write!(w, "  vCPU {} (APIC {}): ", v.id, v.apic_id)?;
            if v.up {
                writeln!(w, "online at {} ms, work {}", Ms(v.online_ns), v.work_done)?;
            } else {
                writeln!(w, "down")?;
            }
            for d in &v.cpuid_differences {
                writeln!(w, "    CPUID differs from vCPU 0: {}", Clean(d))?;
            }
            for p in &v.mtrr_problems {
                writeln!(w, "    MTRR: {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// "4.17.0" from major, minor and extraversion.
pub(crate) struct XenVersion<'a>(&'a XenInfo);

impl fmt::Display for XenVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}{}",
            self.0.major,
            self.0.minor,
            Clean(&self.0.extra)
        )
    }
}

/// A string with control characters shown as `\xNN`, so it stays on its line.
pub(crate) struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut plain_from = 0;
        for (i, c) in s.char_indices() {
            if c.is_control() {
                f.write_str(&s[plain_from..i])?;
                write!(f, "\\x{{{:x}}}", u32::from(c))?;
                plain_from = i + c.len_utf8();
            }
        }
        f.write_str(&s[plain_from..])
    }
}

/// Nanoseconds as milliseconds with three decimals.
pub(crate) struct Ms(pub(crate) u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = String::new();
        write!(
            buf,
            "{}.{:03}",
            self.0 / 1_000_000,
            self.0 % 1_000_000 / 1000
        )?;
        f.pad(&buf)
    }
}

/// A byte count in B, KiB, MiB, GiB or TiB, with one decimal when not exact.
pub(crate) struct Size(pub(crate) u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        let bytes = self.0;
        let mut buf = String::new();
        match UNITS.iter().find(|(_, shift)| bytes >> shift != 0) {
            None => write!(buf, "{bytes} B")?,
            Some(&(unit, shift)) => {
                let whole = bytes >> shift;
                let rest = bytes & ((1u64 << shift) - 1);
                if rest == 0 {
                    write!(buf, "{whole} {unit}")?;
                } else {
                    let tenths = (u128::from(rest) * 10) >> shift;
                    write!(buf, "{whole}.{tenths} {unit}")?;
                }
            }
        }
        f.pad(&buf)
    }
}
