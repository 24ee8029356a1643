"""The example configurations against the real schemas (run by .ci/check-examples, which
installs the tools). Every check prints one line; any failure exits 1 after all checks ran."""

import argparse
import copy
import glob
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import warnings

import jsonschema
import yaml

FAILURES = []


def ok(what):
    print(f"ok   {what}")


def fail(what, detail):
    FAILURES.append(what)
    print(f"FAIL {what}\n     {detail}")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# --- revguard configurations ------------------------------------------------------------------

def revguard_check(revguard, text):
    """`revguard check --config` on a document: (passed, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        out = subprocess.run([revguard, "check", "--config", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    passed = out.returncode == 0 and out.stdout.startswith("config OK: ")
    return passed, (out.stdout + out.stderr).strip()


def schema_errors(validator, doc):
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
            for e in validator.iter_errors(doc)]


def check_configs(revguard, configs, schema, kong_schema):
    """Every shipped configuration: valid for the schema (draft 7), for Kong's draft 4 variant,
    and for `revguard check`."""
    draft7 = jsonschema.Draft7Validator(schema)
    draft4 = jsonschema.Draft4Validator(kong_schema)
    for source, text in configs:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            fail(f"config {source}", f"not JSON: {e}")
            continue
        errors = schema_errors(draft7, doc) + [f"(kong) {e}" for e in schema_errors(draft4, doc)]
        passed, output = revguard_check(revguard, text)
        if errors:
            fail(f"config {source}: schema", "; ".join(errors[:5]))
        elif not passed:
            fail(f"config {source}: revguard check", output)
        else:
            ok(f"config {source}: schema and `revguard check` ({output[len('config OK: '):][:60]}...)")


def check_refused(revguard, schema, kong_schema):
    cases = json.loads(read("tests/fixtures/config-refused.json"))["cases"]
    draft7 = jsonschema.Draft7Validator(schema)
    draft4 = jsonschema.Draft4Validator(kong_schema)
    bad = []
    for case in cases:
        doc = case["config"]
        passed, _ = revguard_check(revguard, json.dumps(doc))
        if draft7.is_valid(doc) or draft4.is_valid(doc) or passed:
            bad.append(f"{case['why']} (schema accepts: {draft7.is_valid(doc)}, kong schema "
                       f"accepts: {draft4.is_valid(doc)}, revguard check passes: {passed})")
    if bad:
        fail("refused configurations", "; ".join(bad))
    else:
        ok(f"{len(cases)} refused configurations (tests/fixtures/config-refused.json): refused by "
           "the schema, Kong's draft 4 schema and `revguard check`")


def check_schemas(schema, meta):
    jsonschema.Draft7Validator.check_schema(schema)
    # Kong validates the metadata file with its own meta-schema: config_schema a draft 4 schema,
    # metrics.label_patterns [{label, pattern}] (kong/runloop/wasm.lua, FILTER_META_SCHEMA).
    jsonschema.Draft4Validator.check_schema(meta["config_schema"])
    kong_meta_schema = {
        "type": "object",
        "properties": {
            "config_schema": {"type": "object"},
            "metrics": {"type": "object", "properties": {"label_patterns": {
                "type": "array", "items": {"type": "object", "required": ["label", "pattern"],
                                           "properties": {"label": {"type": "string"},
                                                          "pattern": {"type": "string"}}}}}},
        },
    }
    jsonschema.Draft4Validator(kong_meta_schema).validate(meta)
    ok("docs/config.schema.json is a draft 7 schema; examples/kong/revguard.meta.json is Kong "
       "filter metadata with a draft 4 schema")


# --- configurations embedded in the host examples ---------------------------------------------

def any_types(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type":
                yield item
            else:
                yield from any_types(item)
    elif isinstance(value, list):
        for item in value:
            yield from any_types(item)


def find_dicts(value, predicate):
    if isinstance(value, dict):
        if predicate(value):
            yield value
        for item in value.values():
            yield from find_dicts(item, predicate)
    elif isinstance(value, list):
        for item in value:
            yield from find_dicts(item, predicate)


WASM_FILTER = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def check_envoy(path):
    """Envoy's own parse of the bootstrap: envoy-data-plane's classes are generated from Envoy's
    protos and refuse unknown fields, unknown enum values and unregistered `@type`s; a
    deprecated field (fail_open) is an error here too."""
    from envoy_data_plane.envoy.config.bootstrap.v3 import Bootstrap

    document = yaml.safe_load(read(path))
    for type_url in set(any_types(document)):
        module = type_url.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        try:
            importlib.import_module(f"envoy_data_plane.{module}")
        except ImportError as e:
            fail(f"{path}: @type {type_url}", f"no such Envoy API package: {e}")
            return [], None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bootstrap = Bootstrap.from_dict(document)
    except Exception as e:  # the library raises KeyError, ValueError, TypeError...
        fail(f"{path}: Envoy bootstrap", f"{type(e).__name__}: {e}")
        return [], None
    configs = []
    for wasm in find_dicts(document, lambda d: d.get("@type") == WASM_FILTER):
        configuration = wasm["config"]["configuration"]
        if configuration.get("@type") != "type.googleapis.com/google.protobuf.StringValue":
            fail(f"{path}: wasm configuration", "revguard takes its JSON as a StringValue")
            continue
        configs.append((f"{path} (wasm filter {wasm['config'].get('name')})",
                        configuration["value"]))
    # The typed view too: the filter's failure policy is the closed one.
    hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.unpack()
    wasm = [f.typed_config.unpack() for f in hcm.http_filters if f.name == "envoy.filters.http.wasm"]
    policies = {str(w.config.failure_policy) for w in wasm}
    if not wasm or any("FAIL_CLOSED" not in p for p in policies):
        fail(f"{path}: failure_policy", f"expected FAIL_CLOSED, got {policies}")
    ok(f"{path}: strict Envoy bootstrap parse ({len(configs)} revguard filter(s), failure_policy "
       "FAIL_CLOSED)")
    return configs, bootstrap


def check_kong(path):
    document = yaml.safe_load(read(path))
    configs = []
    for chain_filter in find_dicts(document, lambda d: d.get("name") == "revguard" and "config" in d):
        config = chain_filter["config"]
        text = config if isinstance(config, str) else json.dumps(config)
        configs.append((f"{path} (filter chain)", text))
    if not configs:
        fail(path, "no revguard filter with a config")
    return configs


def yaml_documents_in(path):
    """The YAML documents of a .yaml file, or of the ```yaml blocks of a Markdown file."""
    text = read(path)
    if path.endswith(".md"):
        blocks = re.findall(r"```ya?ml\n(.*?)```", text, re.S)
    else:
        blocks = [text]
    for block in blocks:
        try:
            yield from (d for d in yaml.safe_load_all(block) if isinstance(d, dict))
        except yaml.YAMLError as e:
            fail(f"{path}: YAML", str(e))


def wasm_plugins():
    found = []
    paths = sorted(set(glob.glob("examples/**/*.y*ml", recursive=True)
                       + glob.glob("examples/**/*.md", recursive=True)))
    for path in paths:
        if "node_modules" in path:
            continue
        for document in yaml_documents_in(path):
            if document.get("kind") == "WasmPlugin":
                found.append((path, document))
    return found


def check_wasm_plugins(npm_tools):
    """Each WasmPlugin against the CRD's schema (enums, types, patterns: ajv code generated from
    istio's crd-all.gen.yaml) and against its TypeScript type, which refuses unknown fields the
    CRD would prune silently."""
    plugins = wasm_plugins()
    if not plugins:
        fail("Istio WasmPlugin", "no `kind: WasmPlugin` document under examples/")
        return []
    script = """
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { readFileSync } from "node:fs";
let failed = 0;
for (const [source, doc] of JSON.parse(readFileSync(0, "utf8"))) {
  try { new WasmPlugin(doc).validate(); console.log(`ok   ${source}: WasmPlugin CRD schema`); }
  catch (e) { failed++; console.log(`FAIL ${source}: WasmPlugin CRD schema\\n     ${e.message}`); }
}
process.exit(failed ? 1 : 0);
"""
    runner = os.path.join(npm_tools, "check-wasmplugin.mjs")
    with open(runner, "w", encoding="utf-8") as f:
        f.write(script)
    out = subprocess.run(["node", runner], input=json.dumps(plugins), capture_output=True,
                         text=True)
    print(out.stdout.rstrip())
    if out.returncode != 0:
        fail("Istio WasmPlugin CRD schema", out.stderr.strip()[:500])
    typescript = ['import type { IWasmPlugin } from '
                  '"@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";']
    for i, (_, document) in enumerate(plugins):
        typescript.append(f"export const plugin{i}: IWasmPlugin = {json.dumps(document)};")
    tsc(npm_tools, "wasmplugins", typescript, [source for source, _ in plugins])
    return [(f"{source} (WasmPlugin {doc['metadata']['name']} pluginConfig)",
             json.dumps(doc["spec"].get("pluginConfig")))
            for source, doc in plugins]


def tsc(npm_tools, name, lines, sources):
    """Type-checks generated TypeScript: object literals get excess-property checks, so an
    unknown member is an error, as a wrong type is."""
    path = os.path.join(npm_tools, f"{name}.ts")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    out = subprocess.run(
        [os.path.join(npm_tools, "node_modules/.bin/tsc"), "--noEmit", "--strict",
         "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
         "--skipLibCheck", path],
        capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{', '.join(sources)}: TypeScript types", (out.stdout + out.stderr).strip()[:1500])
    else:
        ok(f"{', '.join(sources)}: TypeScript types ({name})")


def check_wrangler(npm_tools, path):
    schema = json.loads(read(os.path.join(npm_tools, "wrangler-config-schema.json")))
    with open(path, "rb") as f:
        config = tomllib.load(f)
    errors = schema_errors(jsonschema.Draft7Validator(schema), config)
    if errors:
        fail(f"{path}: wrangler config-schema.json", "; ".join(errors))
    else:
        ok(f"{path}: wrangler config-schema.json")
    # A name bound as a var and declared as a secret is refused by Cloudflare: the policy (it
    # holds client_secret) must be the secret only.
    clash = set(config.get("vars", {})) & set(config.get("secrets", {}).get("required", []))
    if clash:
        fail(f"{path}: vars and secrets", f"bound as both: {sorted(clash)}")
    configs = []
    if "REVGUARD_CONFIG" in config.get("vars", {}):
        configs.append((f"{path} (vars.REVGUARD_CONFIG)", config["vars"]["REVGUARD_CONFIG"]))
    return configs


def markdown_json_block(path, heading):
    section = read(path).split(heading, 1)[1]
    return section.split("```json\n", 1)[1].split("\n```", 1)[0]


# --- metric names -----------------------------------------------------------------------------

def reason_codes():
    """Reason codes from src/reason.rs (`Reason::X => "code"` in the code table)."""
    text = read("src/reason.rs")
    return sorted(set(re.findall(r'Reason::\w+ => "([a-z_]+)"', text)))


def metric_names():
    """Every name the filter defines (the names src/proxy_filter/metrics.rs uses, as issue 14
    fixes them), with two issuers."""
    names = ["revguard_decision_allow", "revguard_decision_deny", "revguard_cache_verified_hit",
             "revguard_cache_introspection_hit", "revguard_introspection_latency_ms",
             "revguard_shared_publish_failed", "revguard_snapshot_generation",
             "revguard_snapshot_age_seconds", "revguard_snapshot_stale"]
    for reason in reason_codes():
        names += [f"revguard_deny_{reason}", f"revguard_fail_open_{reason}"]
    names += [f"revguard_introspection_{o}" for o in ("call", "joined", "active", "inactive", "failed")]
    kinds = ["snapshot", "delta", "keys_0", "keys_1"]
    for kind in kinds:
        names += [f"revguard_fetch_{kind}_{o}" for o in ("updated", "not_modified", "failed", "skipped")]
        names += [f"revguard_shared_{kind}_{o}" for o in ("loaded", "not_loaded")]
    names += ["revguard_keys_0_age_seconds", "revguard_keys_1_age_seconds"]
    return names


def envoy_series(bootstrap, name):
    """Envoy's tag extraction (source/common/stats/tag_extractor_impl.cc): each regex that
    matches the full name removes its first group and names the tag with its second; Prometheus
    output then drops the `wasmcustom.` namespace."""
    full = f"wasmcustom.{name}"
    tags, cut = {}, []
    for spec in bootstrap.stats_config.stats_tags:
        m = re.search(spec.regex, full)
        if m:
            tags[spec.tag_name] = m.group(2)
            cut.append(m.span(1))
    for start, end in sorted(cut, reverse=True):
        full = full[:start] + full[end:]
    return full.removeprefix("wasmcustom."), tags


def kong_series(meta, name):
    """Kong 3.9's export (kong/plugins/prometheus/wasmx.lua, parse_pw_key): patterns in order,
    the match position carried from one match to the next, the name cut at the first label."""
    key = f"pw:revguard:{name}"
    labels, pos, first = {}, 0, len(key)
    for pattern in meta["metrics"]["label_patterns"]:
        m = re.compile(pattern["pattern"]).search(key, pos)
        if m:
            pos = m.end()
            labels[pattern["label"]] = m.group(2)
            first = min(first, pos - len(m.group(1)))
    name = key[:first] if first != len(key) else key
    return name.replace(":", "_"), labels


def check_metrics(bootstrap, meta):
    names = metric_names()
    envoy = {n: envoy_series(bootstrap, n) for n in names}
    kong = {n: kong_series(meta, n) for n in names}
    expected_envoy = {
        "revguard_decision_deny": ("revguard_decision", {"decision": "deny"}),
        "revguard_deny_revoked_session": ("revguard_deny", {"reason": "revoked_session"}),
        "revguard_fail_open_introspection_failed": ("revguard_fail_open", {"reason": "introspection_failed"}),
        "revguard_introspection_failed": ("revguard_introspection", {"introspection_outcome": "failed"}),
        "revguard_introspection_latency_ms": ("revguard_introspection_latency_ms", {}),
        "revguard_fetch_keys_1_not_modified": ("revguard_fetch", {"fetch_kind": "keys_1", "fetch_outcome": "not_modified"}),
        "revguard_shared_delta_not_loaded": ("revguard_shared", {"shared_kind": "delta", "shared_outcome": "not_loaded"}),
        "revguard_shared_publish_failed": ("revguard_shared_publish_failed", {}),
        "revguard_keys_1_age_seconds": ("revguard_keys_age_seconds", {"issuer": "1"}),
        "revguard_snapshot_stale": ("revguard_snapshot_stale", {}),
    }
    bad = [f"envoy {n}: {envoy[n]} != {e}" for n, e in expected_envoy.items() if envoy[n] != e]
    # Kong: the same labels, under Kong's prefix (the key-set age keeps its index in the name).
    for n in names:
        e_name, e_labels = envoy[n]
        k_name, k_labels = kong[n]
        if n.startswith("revguard_keys_"):
            e_name, e_labels = "pw_revguard_" + n, {}
        else:
            e_name = "pw_revguard_" + e_name
        if (k_name, k_labels) != (e_name, e_labels):
            bad.append(f"kong {n}: {(k_name, k_labels)} != {(e_name, e_labels)}")
    if bad:
        fail("metric names through Envoy's stats_tags and Kong's label patterns", "; ".join(bad))
    else:
        ok(f"{len(names)} metric names: Envoy's stats_tags and Kong's label patterns give the same "
           "labels")
    exported = {s[0] for s in envoy.values()} | {s[0] for s in kong.values()}
    origin = set(re.findall(r'"(revguard_origin_[a-z_]+)"', read("src/origin/metrics.rs")))
    return exported, origin


def check_queries(exported, origin, sources):
    """Every series an alert rule or dashboard query selects exists: a `__name__` regex matches
    an exported name, and a plain `revguard_origin_*` name is one the origin registers (plus the
    exposition's `_total`, `_bucket`... suffixes)."""
    bad = []
    for source, text in sources:
        for regex in re.findall(r'__name__=~\\?"([^"\\]+)\\?"', text):
            # A histogram is exported as <name>_bucket, _sum and _count.
            series = {n + suffix for n in exported for suffix in ("", "_bucket", "_sum", "_count")}
            if not any(re.fullmatch(regex, n) for n in series):
                bad.append(f"{source}: __name__=~\"{regex}\" matches no exported series")
        for name in re.findall(r"\b(revguard_origin_[a-z_]+)", text):
            base = re.sub(r"_(total|bucket|sum|count)$", "", name)
            if base not in origin:
                bad.append(f"{source}: {name} is not an origin metric")
    if bad:
        fail("alert rules and dashboard queries", "; ".join(bad))
    else:
        ok("alert rules and dashboard queries select series that exist")


def check_grafana(npm_tools, path):
    dashboard = json.loads(read(path))
    problems = []
    ids = [p["id"] for p in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("duplicate panel ids")
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        if grid["x"] + grid["w"] > 24:
            problems.append(f"panel {panel['id']} is wider than the grid")
        for target in panel.get("targets", []):
            uid = target.get("datasource", {}).get("uid", "")
            if uid.startswith("${") and uid[2:-1] not in variables:
                problems.append(f"panel {panel['id']}: no variable {uid}")
            if not target.get("expr") or not target.get("refId"):
                problems.append(f"panel {panel['id']}: a target without expr or refId")
    if problems:
        fail(f"{path}: structure", "; ".join(problems))
    # Grafana's own dashboard schema (the CUE-generated types of @grafana/schema), with each
    # panel's options against that panel plugin's options type.
    lines = ['import type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen";',
             'import type { Options as TimeSeries } from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen";',
             'import type { Options as Stat } from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen";',
             # JSON spells an enum member by its value: each enum type becomes the union of
             # its values, the rest of the type (and its excess-property checks) stays.
             "type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[]"
             " : T extends object ? { [K in keyof T]: Json<T[K]> } : T;",
             f"export const dashboard: Json<Dashboard> = {json.dumps(dashboard)};"]
    option_types = {"timeseries": "TimeSeries", "stat": "Stat"}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        if panel["type"] not in option_types:
            fail(f"{path}: panel {panel['id']}", f"no options type for {panel['type']}")
            continue
        lines.append(f"export const options{panel['id']}: Json<Partial<{option_types[panel['type']]}>> = "
                     f"{json.dumps(panel['options'])};")
    tsc(npm_tools, "dashboard", lines, [path])
    return [(path, json.dumps(dashboard))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--revguard", required=True)
    parser.add_argument("--npm-tools", required=True)
    args = parser.parse_args()

    schema = json.loads(subprocess.run([args.revguard, "config-schema"], check=True,
                                       capture_output=True, text=True).stdout)
    meta = json.loads(read("examples/kong/revguard.meta.json"))
    check_schemas(schema, meta)

    # The ready policies carry a key placeholder, so that an unedited copy fails closed
    # (tests/config_schema.rs checks that it is their one problem): checked with the test key.
    test_key = read("tests/fixtures/origin.pub").strip()
    configs = [(f"{p} (key placeholder filled in)",
                read(p).replace("REPLACE-WITH-THE-OUTPUT-OF-revguard-keygen", test_key))
               for p in sorted(glob.glob("policies/*.json"))]
    configs += [(p, read(p)) for p in sorted(glob.glob("examples/*/revguard.json"))]
    configs.append(("docs/CONFIGURATION.md (complete example)",
                    markdown_json_block("docs/CONFIGURATION.md", "## A complete example")))
    embedded, bootstrap = check_envoy("examples/envoy/envoy.yaml")
    same = [("examples/envoy/envoy.yaml", embedded, "examples/envoy/revguard.json")]
    configs += embedded
    kong = check_kong("examples/kong/kong.yaml")
    same.append(("examples/kong/kong.yaml", kong, "examples/kong/revguard.json"))
    configs += kong
    configs += check_wasm_plugins(args.npm_tools)
    configs += check_wrangler(args.npm_tools, "examples/worker/wrangler.toml")
    for host_file, found, reference in same:
        if any(json.loads(text) != json.loads(read(reference)) for _, text in found):
            fail(f"{host_file}", f"the embedded configuration differs from {reference}")
        else:
            ok(f"{host_file}: embeds {reference} unchanged")
    check_configs(args.revguard, configs, schema, meta["config_schema"])
    check_refused(args.revguard, schema, meta["config_schema"])

    dashboard = check_grafana(args.npm_tools, "examples/grafana/revguard-dashboard.json")
    if bootstrap is not None:
        exported, origin = check_metrics(bootstrap, meta)
        check_queries(exported, origin,
                      [("examples/alerts/revguard.rules.yml", read("examples/alerts/revguard.rules.yml"))]
                      + dashboard)

    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("\nexample configurations: every check passed")


if __name__ == "__main__":
    main()
