use super::*;
use crate::fake::{FakeEfi, FakeXen};

#[test]
fn without_an_efi_boot_xen_answers_enosys() {
    let x = FakeXen::new(4, 17);
    assert_eq!(efi_version(&x), Err(XenError::ENOSYS));
    assert_eq!(efi_config_table(&x), Err(XenError::ENOSYS));
}

#[test]
fn efi_facts_come_back_at_their_offsets() {
    let x = FakeXen::new(4, 20);
    x.set_efi(FakeEfi {
        version: 0x0002_0046,
        config_table: (0x3f9e_e018, 12),
        memmap: alloc::vec![(0x3f9e_0000, 0x2_0000, 6, 0x8000_0000_0000_000f)],
    });
    assert_eq!(efi_version(&x), Ok(0x0002_0046));
    assert_eq!(efi_config_table(&x), Ok((0x3f9e_e018, 12)));
    assert_eq!(
        efi_mem_info(&x, 0x3f9e_e018),
        Ok(EfiMemInfo {
            kind: 6,
            attr: 0x8000_0000_0000_000f,
            size: 0x3fa0_0000 - 0x3f9e_e018
        })
    );
    assert_eq!(efi_mem_info(&x, 0x1000), Err(XenError::ESRCH));
    assert_eq!(efi_memory_type_name(6), "EfiRuntimeServicesData");
}
