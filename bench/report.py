"""The benchmark's report: the targets of issue 7, issue 2's devcluster figure, issue
16's waits at scale and issue 12's guarded rollouts (:mod:`bench.guarded`), checked
against the measured figures, as JSON-ready dicts and as Markdown."""

from __future__ import annotations

from typing import Any

from bench import guarded

MB = 1_000_000


def find(report: dict[str, Any], name: str, concurrency: int) -> dict[str, Any] | None:
    for run in report["runs"]:
        if run["name"] == name and run["concurrency"] == concurrency:
            return dict(run)
    return None


def _field(values: dict[str, Any] | None, key: str) -> float | None:
    return None if not values else float(values[key])


def _check(
    target: str, measured: float | None, limit: float, unit: str, *, at_most: bool
) -> dict[str, Any]:
    met = None if measured is None else (measured <= limit if at_most else measured >= limit)
    return {
        "target": target,
        "measured": None if measured is None else round(measured, 3),
        "limit": f"{'≤' if at_most else '≥'} {limit:g} {unit}".strip(),
        "met": met,
    }


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    figures = report["figures"]
    checks: list[dict[str, Any]] = []

    def p50(name: str, concurrency: int = 1) -> float | None:
        run = find(report, name, concurrency)
        return None if run is None else float(run["p50_ms"])

    def diff(a: float | None, *b: float | None) -> float | None:
        if a is None or any(x is None for x in b):
            return None
        return a - sum(x for x in b if x is not None)

    raw_get, raw_patch = p50("raw Kubernetes GET"), p50("raw Kubernetes PATCH")
    grpc_get, grpc_set = p50("gRPC GetContainerImage"), p50("gRPC SetContainerImage")
    rest_get, rest_post = p50("REST GET"), p50("REST POST")
    checks.append(
        _check(
            "service adds over raw Kubernetes, Get p50",
            diff(grpc_get, raw_get),
            0.5,
            "ms",
            at_most=True,
        )
    )
    checks.append(
        _check(
            "service adds over raw Kubernetes (GET+PATCH), Set p50",
            diff(grpc_set, raw_get, raw_patch),
            0.5,
            "ms",
            at_most=True,
        )
    )
    checks.append(
        _check(
            "gateway adds over direct gRPC, GET p50",
            diff(rest_get, grpc_get),
            0.3,
            "ms",
            at_most=True,
        )
    )
    checks.append(
        _check(
            "gateway adds over direct gRPC, POST p50",
            diff(rest_post, grpc_set),
            0.3,
            "ms",
            at_most=True,
        )
    )
    for name, minimum in (("REST GET", 2000), ("REST POST", 1800)):
        run = find(report, name, 16)
        checks.append(
            _check(
                f"{name} throughput at c=16", _field(run, "rps"), minimum, "req/s", at_most=False
            )
        )
        checks.append(
            _check(
                f"{name} p99 at c=16",
                _field(run, "p99_ms"),
                12,
                "ms",
                at_most=True,
            )
        )
    one_shot = figures.get("one_shot", {})
    curl = one_shot.get("curl POST (whole stack)", {}).get("mean_ms")
    kubectl = one_shot.get("kubectl set image", {}).get("mean_ms")
    checks.append(
        _check(
            "curl POST faster than kubectl set image (times)",
            kubectl / curl if curl and kubectl else None,
            10,
            "×",
            at_most=False,
        )
    )
    for run in figures.get("waits_at_scale", []):
        if run["waits"] != max(r["waits"] for r in figures["waits_at_scale"]):
            continue
        where = f"{run['waits']:,} waits, {run['layout']}"
        checks.append(
            _check(f"{where}: completed", run["completed"], run["waits"], "", at_most=False)
        )
        checks.append(
            _check(
                f"{where}: REST GET p50 pending over idle (times)",
                run["get_p50_pending_ms"] / run["get_p50_idle_ms"],
                2,
                "×",
                at_most=True,
            )
        )
        for verb in ("list", "watch"):
            checks.append(
                _check(
                    f"{where}: Kubernetes {verb} requests per namespace",
                    run["requests"][verb] / run["namespaces"],
                    3,
                    "",
                    at_most=True,
                )
            )
        checks.append(
            _check(
                f"{where}: last answer after the last completion reached a watch",
                run["last_answer_after_last_completion_s"],
                1,
                "s",
                at_most=True,
            )
        )
    notice = figures.get("notice")
    if notice:
        for quantile in ("p50", "p95"):
            checks.append(
                _check(
                    f"notice of a completed rollout, {quantile}: waited curl over kubectl "
                    "rollout status (times)",
                    notice["curl"][f"{quantile}_ms"] / notice["kubectl"][f"{quantile}_ms"],
                    1,
                    "×",
                    at_most=True,
                )
            )
    idle = figures.get("memory", {}).get("idle")
    checks.append(
        _check(
            "idle resident memory, service + gateway",
            (idle["service"] + idle["gateway"]) / MB if idle else None,
            120,
            "MB",
            at_most=True,
        )
    )
    start = figures.get("start")
    checks.append(
        _check(
            "start to ready (/readyz 200), median",
            _field(start, "readyz_median_s"),
            2,
            "s",
            at_most=True,
        )
    )
    raw16 = find(report, "raw Kubernetes GET", 16)
    checks.append(
        _check(
            "devcluster raw GETs per second (wrk, c=16; issue 2)",
            _field(raw16, "rps"),
            2000,
            "req/s",
            at_most=False,
        )
    )
    soak = figures.get("soak")
    if soak:
        checks.append(_check("soak: 5xx answers", soak["server_errors"], 0, "", at_most=True))
        checks.append(_check("soak: lost updates", len(soak["lost_updates"]), 0, "", at_most=True))
        for who in ("service", "gateway"):
            growth = soak["rss_after"][who] / soak["rss_warm"][who] - 1
            checks.append(
                _check(
                    f"soak: {who} memory growth after warm-up", 100 * growth, 10, "%", at_most=True
                )
            )
    checks += guarded.targets(figures.get("guarded", {}))
    return checks


def ratios(report: dict[str, Any]) -> dict[str, float | None]:
    """p50 ratios at concurrency 1: each layer over what it wraps."""

    def p50(name: str) -> float | None:
        return _field(find(report, name, 1), "p50_ms")

    def over(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 2)

    raw_get, raw_patch = p50("raw Kubernetes GET"), p50("raw Kubernetes PATCH")
    raw_both = None if raw_get is None or raw_patch is None else raw_get + raw_patch
    grpc_get, grpc_set = p50("gRPC GetContainerImage"), p50("gRPC SetContainerImage")
    return {
        "gRPC Get / raw GET": over(grpc_get, raw_get),
        "gRPC Set / (raw GET + raw PATCH)": over(grpc_set, raw_both),
        "REST GET / gRPC Get": over(p50("REST GET"), grpc_get),
        "REST POST / gRPC Set": over(p50("REST POST"), grpc_set),
    }


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    env, figures = report["environment"], report["figures"]
    lines = [
        "# kubeupdate benchmark",
        "",
        f"Run {env['date']} on {env['cpus']} CPUs ({env['platform']}), Python {env['python']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in env['load_average_at_start'])}.",
        f"Settings: {env['settings']}.",
        f"Tools: {env['wrk']}; {env['hyperfine']}.",
        "",
        "All figures come from one run against the devcluster on loopback; compare the ratios, "
        "not the absolute numbers, across machines (these machines are shared and noisy).",
        "",
        "## Targets",
        "",
        "| target | measured | limit | met |",
        "|---|---:|---|---|",
    ]
    for check in report["targets"]:
        met = {True: "yes", False: "**NO**", None: "not measured"}[check["met"]]
        measured = "–" if check["measured"] is None else f"{check['measured']:g}"
        lines.append(f"| {check['target']} | {measured} | {check['limit']} | {met} |")
    lines += ["", "## Ratios (p50 at concurrency 1)", "", "| ratio | value |", "|---|---:|"]
    for name, value in ratios(report).items():
        lines.append(f"| {name} | {'–' if value is None else f'{value:.2f}×'} |")
    lines += [
        "",
        "## Load runs",
        "",
        "Latency in ms. `generator` is the CPU the Python load generator itself used, in cores "
        "(wrk runs in its own process, 2 threads).",
        "",
        "| run | tool | c | requests | req/s | p50 | p99 | errors | generator |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        cores = "–" if run["generator_cores"] is None else f"{run['generator_cores']:.2f}"
        lines.append(
            f"| {run['name']} | {run['tool']} | {run['concurrency']} | {run['requests']} | "
            f"{run['rps']:.0f} | {_ms(run['p50_ms'])} | {_ms(run['p99_ms'])} | "
            f"{run['errors']} | {cores} |"
        )
    memory = figures.get("memory", {})
    if memory:
        lines += [
            "",
            "## Resident memory (MB)",
            "",
            "| when | service | gateway |",
            "|---|---:|---:|",
        ]
        for when, values in memory.items():
            cells = [
                f"{values[who] / MB:.1f}" if who in values else "–"
                for who in ("service", "gateway")
            ]
            lines.append(f"| {when.replace('_', ' ')} | {' | '.join(cells)} |")
    start = figures.get("start")
    if start:
        listening = figures.get("listening_after_s", {})
        lines += [
            "",
            "## Start-up",
            "",
            f"`kubeupdate serve` (both halves, two processes), spawn → `/readyz` 200: "
            f"{', '.join(f'{s:.2f}' for s in start['readyz_s'])} s "
            f"(median {start['readyz_median_s']:.2f} s). Spawn → listening log line for the "
            f"separate processes: service {listening.get('service') or 0:.2f} s, gateway "
            f"{listening.get('gateway') or 0:.2f} s.",
        ]
    one_shot = figures.get("one_shot")
    if one_shot:
        header = "| command | tool | runs | mean ms | median ms |"
        lines += ["", "## One-shot processes", "", header, "|---|---|---:|---:|---:|"]
        for name, result in one_shot.items():
            lines.append(
                f"| {name} | {result['tool']} | {result['runs']} | {result['mean_ms']:.1f} | "
                f"{result['median_ms']:.1f} |"
            )
        lines.append("")
        lines.append("Each timed run is a real change: the image is reset (untimed) before it.")
    scale = figures.get("waits_at_scale")
    if scale:
        lines += [
            "",
            "## Waits at scale",
            "",
            "N waited SetContainerImage calls pending at once (their rollouts frozen by the "
            "devcluster's stopped clock), then released together; a fresh devcluster, service "
            "and gateway per row. `KB/wait`: the service's resident memory with the waits "
            "pending over idle, per wait. `lists`/`watches`: Kubernetes requests the service "
            "sent for the waits (its metrics). Release: the clock moves a simulated second at "
            "a time while the benchmark watches the Deployments itself; `devcluster` is the "
            "time from the release to the last completion that watch received (the "
            "devcluster's share; `busy`: its controllers' busy time meanwhile), `kubeupdate` "
            "the time from then to the last answer.",
            "",
            "| waits | layout | namespaces | completed | all pending after s | KB/wait | "
            "GET p50 idle → pending ms | lists | watches | gets | patches | devcluster s | "
            "busy s | kubeupdate s |",
            "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in scale:
            before = run["requests_until_pending"]
            lines.append(
                f"| {run['waits']:,} | {run['layout']} | {run['namespaces']} | "
                f"{run['completed']:,} | {run['all_pending_after_s']:.1f} | "
                f"{run['rss_per_wait'] / 1000:.0f} | {run['get_p50_idle_ms']:.2f} → "
                f"{run['get_p50_pending_ms']:.2f} | {run['requests']['list']} | "
                f"{run['requests']['watch']} | {before['get']} | {before['patch']} | "
                f"{run['last_completion_after_release_s']:.2f} | "
                f"{run['devcluster_busy_s']:.2f} | "
                f"{run['last_answer_after_last_completion_s']:.2f} |"
            )
    notice = figures.get("notice")
    if notice:
        lines += [
            "",
            "## Notice of a completed rollout",
            "",
            f"{notice['runs']} rollouts, one at a time, each followed by a waited `curl` (POST "
            "with Wait, through the gateway) and by `kubectl rollout status` started on the "
            "same rollout; from the start of the clock step that completed it to each "
            "process's exit, in ms.",
            "",
            "| client | p50 | p95 | max |",
            "|---|---:|---:|---:|",
        ]
        for client in ("curl", "kubectl"):
            spread = notice[client]
            lines.append(
                f"| {client} | {spread['p50_ms']:.1f} | {spread['p95_ms']:.1f} | "
                f"{spread['max_ms']:.1f} |"
            )
    models = figures.get("process_models")
    if models:
        lines += [
            "",
            "## kubeupdate serve: one process or two",
            "",
            "REST throughput with wrk at c=16, each run right after a raw devcluster GET run "
            "(c=16) and given over it.",
            "",
            "| serve | processes | idle RSS MB | raw GET req/s | REST GET req/s | over raw | "
            "REST POST req/s | over raw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, model in models.items():
            lines.append(
                f"| `kubeupdate serve` {name} | {model['processes']} | "
                f"{model['rss_idle'] / MB:.1f} | {model['raw_get_rps']:.0f} | "
                f"{model['rest_get_rps']:.0f} | {model['rest_get_over_raw']:.3f} | "
                f"{model['rest_post_rps']:.0f} | {model['rest_post_over_raw']:.3f} |"
            )
    soak = figures.get("soak")
    if soak:
        lines += [
            "",
            "## Soak",
            "",
            f"{soak['clients']} REST clients, each owning one container, POST then GET per "
            f"round: {soak['requests']} requests in {soak['seconds']:.1f} s; statuses "
            f"{soak['statuses']}; stale reads {soak['stale_reads']}; lost updates "
            f"{len(soak['lost_updates'])}. RSS after warm-up → end: service "
            f"{soak['rss_warm']['service'] / MB:.1f} → {soak['rss_after']['service'] / MB:.1f} MB, "
            f"gateway {soak['rss_warm']['gateway'] / MB:.1f} → "
            f"{soak['rss_after']['gateway'] / MB:.1f} MB.",
        ]
    profiles = figures.get("profiles")
    if profiles:
        lines += ["", "## Profiles (py-spy, while wrk ran at c=16)", ""]
        for name, profile in profiles.items():
            lines.append(
                f"### {name}: {profile['rps_while_profiled']} req/s; CPU in cores: "
                + ", ".join(f"{k} {v}" for k, v in profile["cpu_cores"].items())
            )
            lines.append("")
            lines.append(
                "CPU per request, ms: "
                + ", ".join(f"{k} {v}" for k, v in profile["cpu_ms_per_request"].items())
            )
            lines.append("")
            for who in ("service", "gateway", "devcluster"):
                summary = profile.get(who, {})
                if "error" in summary:
                    lines.append(f"- {who}: py-spy failed: {summary['error']}")
                    continue
                lines.append(f"- {who}, most self time (% of {summary['samples']} samples):")
                for function, share in summary["self_percent"][:10]:
                    lines.append(f"  - {share}% `{function}`")
            lines.append("")
    if figures.get("guarded"):
        lines += guarded.render(figures["guarded"])
    notes = report.get("notes")
    if notes:
        lines += ["", "## Notes", "", notes]
    return "\n".join(lines) + "\n"
