//! Programming a plan into config space: bridge windows top-down, then BARs, each with the
//! function's decoding off (Xen's vPCI ignores a BAR write while the BAR is mapped), read back
//! and verified, COMMAND restored.

use super::*;

/// Programs `plan`: every bridge's windows (top-down), then every BAR, each with the
/// function's decoding off, read back and verified, COMMAND restored.
pub fn apply(cs: &dyn ConfigSpace, topo: &Topology, plan: &AllocPlan) -> Vec<Applied> {
    let mut out = Vec::new();
    for bw in &plan.bridges {
        apply_bridge(cs, bw, &mut out);
    }
    let mut i = 0;
    while i < plan.moves.len() {
        let sbdf = plan.moves[i].sbdf;
        let mut j = i;
        while j < plan.moves.len() && plan.moves[j].sbdf == sbdf {
            j += 1;
        }
        apply_function(cs, topo, &plan.moves[i..j], &mut out);
        i = j;
    }
    out
}

/// Turns `bits` of COMMAND off; `Err` with the readback if they stay on.
fn decode_off(cs: &dyn ConfigSpace, sbdf: Sbdf, bits: u16) -> Result<u16, u16> {
    let cmd = cs.read32(sbdf, COMMAND) as u16;
    if cmd & bits != 0 {
        // STATUS (the upper half) is write-1-to-clear: write zeros there.
        cs.write32(sbdf, COMMAND, u32::from(cmd & !bits));
        let now = cs.read32(sbdf, COMMAND) as u16;
        if now & bits != 0 {
            cs.write32(sbdf, COMMAND, u32::from(cmd));
            return Err(now);
        }
    }
    Ok(cmd)
}

fn restore(cs: &dyn ConfigSpace, sbdf: Sbdf, cmd: u16, bits: u16) {
    if cmd & bits != 0 {
        cs.write32(sbdf, COMMAND, u32::from(cmd));
    }
}

fn show(r: &Option<Range<u64>>) -> String {
    match r {
        Some(r) => format!("{:#x}..{:#x}", r.start, r.end),
        None => String::from("closed"),
    }
}

fn apply_bridge(cs: &dyn ConfigSpace, bw: &BridgeWindows, out: &mut Vec<Applied>) {
    let s = bw.sbdf;
    let cmd = match decode_off(cs, s, CMD_MEM) {
        Ok(c) => c,
        Err(now) => {
            out.push(Applied {
                what: format!("{s} windows mem {} pref {}", show(&bw.mem), show(&bw.pref)),
                ok: false,
                detail: format!("COMMAND memory decode stays on ({now:#06x}); not written"),
            });
            return;
        }
    };
    // Memory window (0x20): bits 15:4 of base and limit are address bits 31:20.
    let mem = match &bw.mem {
        Some(r) if r.start < r.end && r.end <= FOUR_GIB => {
            ((r.start >> 16) as u32 & 0xfff0) | (((r.end - 1) >> 16) as u32 & 0xfff0) << 16
        }
        _ => 0x0000_fff0,
    };
    cs.write32(s, 0x20, mem);
    let got = cs.read32(s, 0x20) & 0xfff0_fff0;
    out.push(Applied {
        what: format!("{s} memory window {}", show(&bw.mem)),
        ok: got == mem,
        detail: if got == mem {
            String::from("ok")
        } else {
            format!("wrote {mem:#010x}, reads {got:#010x}")
        },
    });
    // Prefetchable window (0x24, upper halves at 0x28/0x2c), in Linux's order: the upper
    // limit first (closing the window meanwhile), the rest, the upper base, the upper limit.
    let cap64 = cs.read32(s, 0x24) & 0xf == 1;
    let (lo, base_hi, limit_hi) = match &bw.pref {
        Some(r) if r.start < r.end => {
            let last = r.end - 1;
            (
                ((r.start >> 16) as u32 & 0xfff0) | ((last >> 16) as u32 & 0xfff0) << 16,
                (r.start >> 32) as u32,
                (last >> 32) as u32,
            )
        }
        _ => (0x0000_fff0, 0, 0),
    };
    let (ok, detail) = if !cap64 && (base_hi | limit_hi) != 0 {
        (
            false,
            String::from("prefetchable window is 32-bit only; not written"),
        )
    } else {
        if cap64 {
            cs.write32(s, 0x2c, 0);
        }
        cs.write32(s, 0x24, lo);
        if cap64 {
            cs.write32(s, 0x28, base_hi);
            cs.write32(s, 0x2c, limit_hi);
        }
        let got = cs.read32(s, 0x24) & 0xfff0_fff0;
        let (gb, gl) = if cap64 {
            (cs.read32(s, 0x28), cs.read32(s, 0x2c))
        } else {
            (0, 0)
        };
        if (got, gb, gl) == (lo, base_hi, limit_hi) {
            (true, String::from("ok"))
        } else {
            (
                false,
                format!(
                    "wrote {lo:#010x}/{base_hi:#x}/{limit_hi:#x}, reads {got:#010x}/{gb:#x}/{gl:#x}"
                ),
            )
        }
    };
    out.push(Applied {
        what: format!("{s} prefetchable window {}", show(&bw.pref)),
        ok,
        detail,
    });
    restore(cs, s, cmd, CMD_MEM);
}

fn apply_function(
    cs: &dyn ConfigSpace,
    topo: &Topology,
    moves: &[BarMove],
    out: &mut Vec<Applied>,
) {
    let s = moves[0].sbdf;
    let f = topo.find(s);
    let name = |m: &BarMove| {
        let what = if m.bar == 6 {
            String::from("ROM")
        } else {
            format!("BAR{}", m.bar)
        };
        format!("{s} {what} {:#x} -> {:#x}", m.old, m.new)
    };
    let offset = |m: &BarMove| -> Option<u16> {
        let f = f?;
        match (m.bar, f.layout()) {
            (6, HEADER_ENDPOINT) => Some(ROM0),
            (6, HEADER_BRIDGE) => Some(ROM1),
            (0..=5, HEADER_ENDPOINT) | (0..=1, HEADER_BRIDGE) => Some(BAR0 + 4 * u16::from(m.bar)),
            _ => None,
        }
    };
    let bits = CMD_MEM | CMD_IO;
    let cmd = match decode_off(cs, s, bits) {
        Ok(c) => c,
        Err(now) => {
            for m in moves {
                out.push(Applied {
                    what: name(m),
                    ok: false,
                    detail: format!("COMMAND decode stays on ({now:#06x}); not written"),
                });
            }
            return;
        }
    };
    for m in moves {
        let Some(off) = offset(m) else {
            out.push(Applied {
                what: name(m),
                ok: false,
                detail: String::from("no such BAR register"),
            });
            continue;
        };
        let cur = cs.read32(s, off);
        let (addr_mask, keep) = if m.kind == BarKind::Rom {
            (ROM_ADDR, ROM_ENABLE)
        } else {
            (BAR_MEM_ADDR, !BAR_MEM_ADDR)
        };
        cs.write32(s, off, (m.new as u32 & addr_mask) | (cur & keep));
        let wide = m.kind == BarKind::Mem64;
        if wide {
            cs.write32(s, off + 4, (m.new >> 32) as u32);
        }
        let lo = u64::from(cs.read32(s, off) & addr_mask);
        let hi = if wide {
            u64::from(cs.read32(s, off + 4)) << 32
        } else {
            0
        };
        let got = hi | lo;
        out.push(Applied {
            what: name(m),
            ok: got == m.new,
            detail: if got == m.new {
                String::from("ok")
            } else {
                format!("wrote {:#x}, reads back {got:#x}", m.new)
            },
        });
    }
    restore(cs, s, cmd, bits);
}

impl core::fmt::Display for Applied {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}
