//! A deadline really stops extraction (issue 21, C1): the extraction thread ends shortly after
//! [`extract_isolated`] returns `extraction_timeout`, instead of running on with its memory.
//! Alone in its file so that no other test's extraction threads are counted.

use std::time::{Duration, Instant};

use docent_extract::{
    Cancel, ExtractError, Limits, extract, extract_isolated, live_extraction_threads,
};

/// A CSV of `rows` small rows: seconds of work for a debug build when nothing stops it.
fn long_csv(rows: usize) -> Vec<u8> {
    let mut s = String::with_capacity(rows * 12);
    s.push_str("n,v\n");
    for i in 0..rows {
        s.push_str(&i.to_string());
        s.push_str(",x\n");
    }
    s.into_bytes()
}

fn unbounded(cancel: Cancel) -> Limits {
    Limits {
        max_records: u64::MAX,
        cancel,
        ..Limits::default()
    }
}

/// Waits up to `within` for every extraction thread to end; returns how long it took.
fn threads_end_within(within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if live_extraction_threads() == 0 {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_runaway_extraction_stops_at_its_deadline_and_on_cancel() {
    let csv = long_csv(1_200_000);
    // How long the whole job takes unstopped, on this machine and profile.
    let started = Instant::now();
    let full = extract(&csv, "long.csv", "", unbounded(Cancel::default()));
    let unstopped = started.elapsed();
    println!(
        "unstopped: {unstopped:?} ({:?})",
        full.as_ref().map(|o| o.blocks.len())
    );
    drop(full);

    let started = Instant::now();
    let err = extract_isolated(
        csv.clone(),
        "long.csv".into(),
        String::new(),
        unbounded(Cancel::default()),
        Duration::from_millis(20),
    )
    .unwrap_err();
    assert_eq!(err, ExtractError::Timeout(Duration::from_millis(20)));
    assert_eq!(err.code(), "extraction_timeout");
    let ended = threads_end_within(Duration::from_secs(5)).expect("the extraction thread runs on");
    let total = started.elapsed();
    println!("timed out, thread ended {ended:?} later, {total:?} in all");
    // The thread stopped at a check, not after doing all the work (the text is decoded and
    // sniffed in single calls before the first check; the machine may be busy).
    assert!(ended < unstopped / 4, "{ended:?} vs {unstopped:?}");

    // Cancelling the caller's token (a task stopped) stops it too, before the deadline.
    let cancel = Cancel::new();
    let trip = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        trip.cancel();
    });
    let started = Instant::now();
    let err = extract_isolated(
        csv,
        "long.csv".into(),
        String::new(),
        unbounded(cancel),
        Duration::from_secs(600),
    )
    .unwrap_err();
    let took = started.elapsed();
    canceller.join().unwrap();
    assert_eq!(err, ExtractError::Cancelled, "{took:?}");
    assert!(threads_end_within(Duration::from_secs(5)).is_some());
    assert!(took < unstopped / 4, "{took:?} vs {unstopped:?}");
}
