//! The human-readable tables of a benchmark's report.

use super::*;

pub(super) fn print_table(report: &Value) {
    if report["scenario"] == "backlog" {
        print_backlog_table(report);
        return;
    }
    if report["scenario"] == "hooks" {
        let number = |value: &Value| {
            value
                .as_f64()
                .map_or("-".to_owned(), |number| format!("{number:.3}"))
        };
        let line = |label: &str, value: &Value| {
            println!(
                "{label:<20}p50 {}  p90 {}  p99 {}  max {}",
                number(&value["p50"]),
                number(&value["p90"]),
                number(&value["p99"]),
                number(&value["max"])
            )
        };
        println!(
            "scenario            hooks ({} evaluations, 3 hooks, {} refused)",
            report["evaluations"], report["refused"]
        );
        line("round trip ms", &report["round_trip_ms"]);
        line("hooks' own ms", &report["hooks_time_ms"]);
        line("Herald overhead ms", &report["herald_overhead_ms"]);
        println!(
            "server              peak RSS {} MiB, CPU {} s",
            number(&report["server_peak_rss_mib"]),
            number(&report["server_cpu_seconds"])
        );
        return;
    }
    let number = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.1}"))
    };
    println!(
        "scenario            {} ({}, {} node(s))",
        report["scenario"].as_str().unwrap_or_default(),
        report["backend"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    println!(
        "events x endpoints  {} x {}  ({} publishers)",
        report["events"], report["endpoints"], report["publishers"]
    );
    println!(
        "store before run    {} delivered deliveries, {} idle endpoints",
        report["history_deliveries"], report["idle_endpoints"]
    );
    println!(
        "publish rate        {} /s  ({} errors)",
        number(&report["publish_rate_per_s"]),
        report["publish_errors"]
    );
    println!(
        "delivery rate       {} /s  ({} delivered, {} missing, {} duplicates)",
        number(&report["delivery_rate_per_s"]),
        report["deliveries"],
        report["deliveries_missing"],
        report["duplicates"]
    );
    let latency = &report["latency_ms"];
    println!(
        "latency ms          p50 {}  p90 {}  p99 {}  max {}",
        number(&latency["p50"]),
        number(&latency["p90"]),
        number(&latency["p99"]),
        number(&latency["max"])
    );
    println!(
        "server              peak RSS {} MiB, CPU {} s",
        number(&report["server_peak_rss_mib"]),
        number(&report["server_cpu_seconds"])
    );
    if let Some(instructions) = report["server_instructions"].as_u64() {
        println!(
            "callgrind           {instructions} instructions, {} per delivery",
            number(&report["instructions_per_delivery"])
        );
    }
    let precise = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.3}"))
    };
    for (index, node) in report["server_timings"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (series, timing) in node.as_object().into_iter().flatten() {
            println!(
                "node {index} {series}: n {}  mean {} ms  p50 ≤ {} ms  p99 ≤ {} ms",
                timing["count"],
                precise(&timing["mean_ms"]),
                precise(&timing["p50_ms"]),
                precise(&timing["p99_ms"])
            );
        }
    }
}

pub(super) fn print_backlog_table(report: &Value) {
    let number = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.1}"))
    };
    println!(
        "scenario            backlog ({}, {} node(s))",
        report["backend"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    println!(
        "pending             {}  ({} a batch, {} publishers, {} errors)",
        report["pending"], report["batch"], report["publishers"], report["publish_errors"]
    );
    println!(
        "fill                {} events/s  ({} s; {} delivered while paused)",
        number(&report["fill_rate_per_s"]),
        number(&report["fill_seconds"]),
        report["delivered_while_paused"]
    );
    println!(
        "drain               {} /s  ({} s; {} delivered, {} missing, {} duplicates)",
        number(&report["drain_rate_per_s"]),
        number(&report["drain_seconds"]),
        report["deliveries"],
        report["deliveries_missing"],
        report["duplicates"]
    );
    let rss = &report["rss_mib"];
    println!(
        "server RSS MiB      before fill {}  after fill {}  drain max {}  peak {}",
        number(&rss["before_fill"]),
        number(&rss["after_fill"]),
        number(&rss["drain_max"]),
        number(&report["server_peak_rss_mib"])
    );
    println!(
        "server CPU          {} s  ({} s while draining)",
        number(&report["server_cpu_seconds"]),
        number(&report["drain_cpu_seconds"])
    );
}
