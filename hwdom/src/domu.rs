//! What the report says about a DomU, from what the service loop saw
//! (`toolstack::service::StopReason`).

use report::DomuState;
use toolstack::service::StopReason;
use xen::domctl::ShutdownCode;

/// The report's state for a DomU that stopped.
pub fn state_after(why: StopReason) -> DomuState {
    match why {
        StopReason::Shutdown(c) => match c {
            ShutdownCode::Poweroff => DomuState::Poweroff,
            ShutdownCode::Reboot => DomuState::Reboot,
            ShutdownCode::Suspend => DomuState::Suspend,
            ShutdownCode::Crash => DomuState::Crash,
            ShutdownCode::Watchdog => DomuState::Watchdog,
            ShutdownCode::SoftReset => DomuState::SoftReset,
            ShutdownCode::Other(_) => DomuState::Unknown,
        },
        StopReason::Dying => DomuState::Dying,
        StopReason::Vanished => DomuState::Vanished,
        StopReason::IgnoredShutdown => DomuState::Destroyed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stop_has_its_state_and_name() {
        let cases = [
            (StopReason::Shutdown(ShutdownCode::Poweroff), "poweroff"),
            (StopReason::Shutdown(ShutdownCode::Reboot), "reboot"),
            (StopReason::Shutdown(ShutdownCode::Crash), "crash"),
            (StopReason::Shutdown(ShutdownCode::SoftReset), "soft_reset"),
            (StopReason::Shutdown(ShutdownCode::Other(9)), "unknown"),
            (StopReason::Dying, "dying"),
            (StopReason::Vanished, "vanished"),
            (StopReason::IgnoredShutdown, "destroyed"),
        ];
        for (why, name) in cases {
            let s = state_after(why);
            assert_eq!(s.name(), name);
            // The wire form is the same word.
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                alloc::format!("\"{name}\"")
            );
        }
        assert_eq!(
            serde_json::to_string(&DomuState::BuildFailed).unwrap(),
            "\"build failed\""
        );
    }
}
