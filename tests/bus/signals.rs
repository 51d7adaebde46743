//! A SIGTERM sent the instant the bus says it is listening stops it, cleanly: its signal
//! handlers are installed before it writes that line. (Installed after, a signal could land
//! between the handler's installation and its listener and be lost, the process left running.)

use std::time::Duration;

use weave_test_kit::*;

#[test]
fn a_sigterm_the_moment_the_bus_is_listening_stops_it() {
    for round in 0..30 {
        let mut bus = BusProcess::start();
        let code = bus.terminate_within(WAIT);
        assert_eq!(
            code,
            Some(0),
            "round {round}: still running, or not a clean stop"
        );
    }
}

#[test]
fn a_sigterm_after_a_while_stops_it_too() {
    let mut bus = BusProcess::start();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(bus.terminate_within(WAIT), Some(0));
}
