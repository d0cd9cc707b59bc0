//! Real-world specs through our ingest and validator compiler, by hand (no assertions):
//!
//! ```text
//! make corpus     # installs GitHub's spec and the APIs.guru directory into ./corpus, runs this
//! cargo run --release -p gatehouse-registry --example corpus -- DIR_OR_FILE...
//! cargo run --release -p gatehouse-registry --example corpus -- --measure FILE
//! ```
//!
//! (No curl line: this example calls the library directly, without a gateway.)
//!
//! **Corpus mode** walks every `.json`, `.yaml` and `.yml` file under the arguments, parses
//! each with the registry's ingest (`openapi::parse`, default [`Limits`] unless
//! `--max-bytes` says otherwise) and compiles its validators with `compile_document`
//! (default [`CompileOptions`], responses included: the registry's publish check), after
//! checking its path templates against a router built as the snapshot builds it. A panic
//! anywhere in that is caught per document, counted and named: never fatal. It prints the
//! documents, those accepted, those refused grouped by reason (by ingest, or because two
//! path templates collide in the gateway's router, which the registry refuses too), those
//! compiled with schemas left unchecked grouped by reason, the crashes, and the operations.
//! Documents refused only for a non-semver `info.version` are run again with it set to
//! 1.0.0, so what the rest of the pipeline makes of them is counted as well.
//! `--list` prints every refused document and every unchecked schema, not just examples.
//! The classes are explained in `docs/validation.md`, "Real-world specs".
//!
//! **`--measure FILE`** does what the registry and the snapshot do with one document, each
//! path in a fresh process of this example (so none starts from an allocator another
//! warmed), and prints wall time and the resident-set peak above the RSS before
//! (`VmHWM`, reset through `/proc/self/clear_refs` between steps) for the parse and the
//! compile separately and together: registration (`openapi::parse` of the bytes, then the
//! publish check, `compile_document` with requests and responses), the snapshot under the
//! default policy (the stored JSON through `serde_json` and `parse_value`, then
//! `compile_document` for requests only), and the snapshot with response validation
//! `report`/`enforce` (responses compiled too), and whether the routes fit the router. The
//! system allocator, as the default gateway build uses.

use gatehouse_policies::document::{self, Limits, LoadError};
use gatehouse_policies::openapi::{self, SpecError};
use gatehouse_policies::redact::clip;
use gatehouse_policies::validate::{CompileError, CompileOptions, compile_document};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// `VmRSS` or `VmHWM` from `/proc/self/status`, in bytes (0 where there is no procfs).
fn proc_status(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// One step's cost: wall time, the resident-set peak above the RSS at its start, and the
/// RSS growth that remains after it (what the step keeps, plus what the allocator holds).
struct Cost {
    wall: Duration,
    rss_peak: usize,
    rss_kept: isize,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    // Resets VmHWM to the current RSS (Linux 4.0+); harmless where it is not supported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss0 = proc_status("VmRSS:");
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed();
    let cost = Cost {
        wall,
        rss_peak: proc_status("VmHWM:").saturating_sub(rss0),
        rss_kept: proc_status("VmRSS:") as isize - rss0 as isize,
    };
    (out, cost)
}

fn print_cost(step: &str, c: &Cost) {
    println!(
        "  {step:<44} {:>7.3} s   peak RSS +{:>6.1} MiB   kept {:>+7.1} MiB",
        c.wall.as_secs_f64(),
        c.rss_peak as f64 / MIB,
        c.rss_kept as f64 / MIB,
    );
}

// --- the refusal classes -----------------------------------------------------------------

/// The class of an ingest refusal: the error kind, sometimes refined by what it names.
fn spec_class(e: &SpecError) -> String {
    match e {
        SpecError::Load(l) => match l {
            LoadError::TooLarge { limit, .. } => format!("load: larger than {limit} bytes"),
            LoadError::InvalidUtf8 { .. } => "load: not UTF-8".into(),
            LoadError::Empty => "load: empty".into(),
            LoadError::TooDeep { limit, .. } => format!("load: nests deeper than {limit}"),
            LoadError::TooManyNodes { limit } => format!("load: more than {limit} nodes"),
            LoadError::DuplicateKey { .. } => "load: duplicate key".into(),
            LoadError::Json { .. } => "load: invalid JSON".into(),
            LoadError::Yaml { .. } => "load: invalid YAML".into(),
            LoadError::UnsupportedYaml { message, .. } => {
                format!("load: unsupported YAML ({message})")
            }
        },
        SpecError::NotAnObject => "not an object".into(),
        SpecError::Swagger2 { .. } => "Swagger 2.0".into(),
        SpecError::MissingOpenApi => "no `openapi` field".into(),
        SpecError::UnsupportedVersion { version } => format!("OpenAPI version {version}"),
        SpecError::Missing { pointer } => format!("missing `{}`", generic_pointer(pointer)),
        SpecError::WrongType { pointer, expected } => {
            format!("`{}` must be {expected}", generic_pointer(pointer))
        }
        SpecError::VersionNotSemver { version } => {
            format!("info.version not semver ({})", version_shape(version))
        }
        SpecError::ExternalRef { .. } => "external $ref".into(),
        SpecError::UnresolvedRef { .. } => "unresolved $ref".into(),
        SpecError::RefCycle { .. } => "$ref chain never ends".into(),
        SpecError::InvalidValue {
            pointer, expected, ..
        } => format!("`{}` invalid: {expected}", generic_pointer(pointer)),
        SpecError::PathNotAbsolute { .. } => "path does not start with /".into(),
        SpecError::PathParamUndeclared { .. } => "path parameter used, not declared".into(),
        SpecError::PathParamNotInTemplate { .. } => "path parameter declared, not in path".into(),
        SpecError::UnknownSecurityScheme { .. } => "unknown security scheme".into(),
    }
}

/// The shape of a non-semver `info.version`, to group them: `6` → `N`, `2016-10-01` → a date.
fn version_shape(v: &str) -> &'static str {
    let v = v.trim();
    let digits_dots = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    let parts = v.split('.').count();
    let is_date = v.len() >= 10
        && v.as_bytes()[4] == b'-'
        && v.as_bytes()[7] == b'-'
        && v[..4].chars().all(|c| c.is_ascii_digit());
    if digits_dots(v) && parts == 1 {
        "a number, e.g. 6"
    } else if digits_dots(v) && parts == 2 {
        "two parts, e.g. 1.0"
    } else if digits_dots(v) && parts > 3 {
        "four or more parts, e.g. 1.0.0.1"
    } else if is_date {
        "a date, e.g. 2016-10-01"
    } else if v.starts_with(['v', 'V']) {
        "v-prefixed, e.g. v1 or v2.1"
    } else if v.is_empty() {
        "empty"
    } else {
        "other text, e.g. 1.0 beta"
    }
}

/// A JSON pointer with its author-chosen names replaced by `*`, so that refusals of one
/// kind group together: `/paths/~1pets/get/parameters/0/in` → `/paths/*/*/parameters/*/in`.
fn generic_pointer(pointer: &str) -> String {
    let parts: Vec<&str> = pointer.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let prev = if i > 0 { parts[i - 1] } else { "" };
        let named = matches!(
            prev,
            "paths"
                | "schemas"
                | "parameters"
                | "responses"
                | "properties"
                | "securitySchemes"
                | "requestBodies"
                | "headers"
                | "content"
                | "examples"
                | "callbacks"
                | "links"
                | "scopes"
                | "security"
                | "servers"
                | "variables"
                | "tags"
        ) || (i >= 2 && parts[i - 2] == "paths")
            || p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty();
        out.push(if named { "*" } else { p });
    }
    out.join("/")
}

/// The class of a schema left unchecked by `compile_document`.
fn compile_class(e: &CompileError) -> String {
    match e {
        CompileError::InvalidSchema { message, .. } => {
            format!("schema does not compile: {}", message_prefix(message))
        }
        CompileError::UnresolvedRef { .. } => "unresolved $ref".into(),
        CompileError::SchemaTooDeep { .. } => "schema nests too deeply".into(),
        CompileError::UnsupportedStyle {
            location, style, ..
        } => format!("style `{style}` on a {location} parameter"),
        CompileError::InvalidMediaType { .. } => "media type is not type/subtype".into(),
    }
}

/// The part of a `jsonschema` message that names the kind of problem: the first quoted
/// value (the offending one) becomes `…`, and at most 80 characters are kept.
fn message_prefix(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.trim().chars();
    let mut replaced = false;
    while let Some(c) = chars.next() {
        if c == '"' && !replaced {
            replaced = true;
            // Skip to the closing quote (a backslash escapes the next character).
            while let Some(d) = chars.next() {
                match d {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            out.push('…');
        } else {
            out.push(c);
        }
    }
    clip(&out, 80)
}

// --- corpus mode -------------------------------------------------------------------------

/// A document and what was said about it.
type Example = (PathBuf, String);

/// What happened to the documents of one pass.
#[derive(Default)]
struct Tally {
    documents: usize,
    accepted: usize,
    accepted_unchecked: usize,
    operations: usize,
    unchecked_schemas: usize,
    /// class → documents (path, message)
    refused: BTreeMap<String, Vec<Example>>,
    /// class → (documents, schemas, examples)
    unchecked: BTreeMap<String, (usize, usize, Vec<Example>)>,
    crashes: Vec<(PathBuf, String, &'static str)>,
}

enum Outcome {
    Refused(SpecError),
    /// Ingest accepted it, but two path templates collide in the gateway's router.
    Unroutable {
        template: String,
        class: &'static str,
        message: String,
    },
    Compiled {
        operations: usize,
        errors: Vec<CompileError>,
    },
    Crashed {
        message: String,
        stage: &'static str,
    },
}

impl Tally {
    fn record(&mut self, file: &Path, outcome: Outcome) {
        self.documents += 1;
        match outcome {
            Outcome::Crashed { message, stage } => {
                self.crashes.push((file.to_path_buf(), message, stage));
            }
            Outcome::Refused(e) => {
                self.refused
                    .entry(spec_class(&e))
                    .or_default()
                    .push((file.to_path_buf(), e.to_string()));
            }
            Outcome::Unroutable {
                template,
                class,
                message,
            } => {
                self.refused
                    .entry(format!("routes: {class}"))
                    .or_default()
                    .push((file.to_path_buf(), format!("path `{template}`: {message}")));
            }
            Outcome::Compiled { operations, errors } => {
                self.accepted += 1;
                self.operations += operations;
                if errors.is_empty() {
                    return;
                }
                self.accepted_unchecked += 1;
                self.unchecked_schemas += errors.len();
                let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
                for e in &errors {
                    classes
                        .entry(compile_class(e))
                        .or_default()
                        .push(e.to_string());
                }
                for (class, msgs) in classes {
                    let entry = self.unchecked.entry(class).or_default();
                    entry.0 += 1;
                    entry.1 += msgs.len();
                    entry
                        .2
                        .extend(msgs.into_iter().map(|m| (file.to_path_buf(), m)));
                }
            }
        }
    }

    fn print(&self, indent: &str, list: bool) {
        let refused: usize = self.refused.values().map(Vec::len).sum();
        println!(
            "{indent}accepted: {} ({} with every schema compiled, {} with schemas left unchecked)",
            self.accepted,
            self.accepted - self.accepted_unchecked,
            self.accepted_unchecked
        );
        println!(
            "{indent}operations (accepted documents): {}",
            self.operations
        );
        println!("{indent}refused: {refused}");
        let mut classes: Vec<_> = self.refused.iter().collect();
        classes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        for (class, docs) in classes {
            println!("{indent}  {:>5}  {class}", docs.len());
            print_examples(indent, docs, list, 180);
        }
        println!(
            "{indent}compiled with schemas left unchecked: {} documents, {} schemas",
            self.accepted_unchecked, self.unchecked_schemas
        );
        let mut classes: Vec<_> = self.unchecked.iter().collect();
        classes.sort_by(|a, b| (b.1).1.cmp(&(a.1).1).then(a.0.cmp(b.0)));
        for (class, (docs, schemas, examples)) in classes {
            println!("{indent}  {schemas:>5} schemas in {docs:>4} documents  {class}");
            print_examples(indent, examples, list, 200);
        }
        println!("{indent}crashes: {}", self.crashes.len());
        for (path, msg, stage) in &self.crashes {
            println!("{indent}  {} (during {stage}): {msg}", path.display());
        }
    }
}

fn is_document(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let lower = name.to_ascii_lowercase();
    let ext_ok = [".json", ".yaml", ".yml"]
        .iter()
        .any(|e| lower.ends_with(e));
    ext_ok && !matches!(name, "package.json" | "package-lock.json" | "tsconfig.json")
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(rd) = std::fs::read_dir(path) else {
            eprintln!("cannot read directory {}", path.display());
            return;
        };
        let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    } else if is_document(path) {
        out.push(path.to_path_buf());
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Compiles the document's router exactly as the snapshot does
/// ([`gatehouse_registry::snapshot::compile_router`], which the registry also runs at
/// registration) and names the template it refuses, with the class of the problem.
fn route_check(doc: &openapi::Document) -> Result<(), (String, &'static str, String)> {
    gatehouse_registry::snapshot::compile_router(doc)
        .map(|_| ())
        .map_err(|(template, reason)| {
            let class = if reason.contains("only parameter names differ") {
                "templates that differ only in parameter names, same method"
            } else if reason.to_ascii_lowercase().contains("per path segment") {
                "two parameters in one path segment"
            } else if reason.to_ascii_lowercase().contains("conflict") {
                "conflicts with another template"
            } else {
                "a template the router refuses"
            };
            (template, class, reason)
        })
}

/// Parses (`parse`, or a tree already loaded) and compiles one document, a panic in either
/// caught and returned as [`Outcome::Crashed`].
fn evaluate(
    parse: impl FnOnce() -> Result<openapi::Document, SpecError>,
    opts: &CompileOptions,
) -> Outcome {
    let mut stage = "ingest";
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let doc = match parse() {
            Ok(d) => d,
            Err(e) => return Outcome::Refused(e),
        };
        stage = "routing";
        if let Err((template, class, message)) = route_check(&doc) {
            return Outcome::Unroutable {
                template,
                class,
                message,
            };
        }
        stage = "compile";
        let (ops, errors) = compile_document(&doc, opts);
        Outcome::Compiled {
            operations: ops.len(),
            errors,
        }
    }));
    result.unwrap_or_else(|_| Outcome::Crashed {
        message: LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut())),
        stage,
    })
}

fn run_corpus(roots: &[PathBuf], limits: &Limits, list: bool, progress: bool) {
    let mut files = Vec::new();
    for r in roots {
        if !r.exists() {
            eprintln!("{}: no such file or directory", r.display());
            std::process::exit(2);
        }
        walk(r, &mut files);
    }
    // A panic is caught and counted; keep its message instead of printing it.
    panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-text panic)".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = format!("{msg}{at}"));
    }));

    let opts = CompileOptions::default();
    let mut all = Tally::default();
    // Documents refused only for their `info.version`, run again with it set to 1.0.0, to
    // see what the rest of ingest and the compiler make of them.
    let mut past_version = Tally::default();
    let mut bytes_total = 0u64;
    let started = Instant::now();
    for (i, file) in files.iter().enumerate() {
        if progress {
            eprintln!("[{}/{}] {}", i + 1, files.len(), file.display());
        }
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                continue;
            }
        };
        bytes_total += bytes.len() as u64;
        let outcome = evaluate(|| openapi::parse(&bytes, limits), &opts);
        if let Outcome::Refused(SpecError::VersionNotSemver { .. }) = outcome {
            let again = evaluate(
                || {
                    let mut tree = document::load(&bytes, limits)?;
                    if let Some(info) = tree.get_mut("info").and_then(|i| i.as_object_mut()) {
                        info.insert("version".into(), "1.0.0".into());
                    }
                    openapi::parse_value(tree)
                },
                &opts,
            );
            past_version.record(file, again);
        }
        all.record(file, outcome);
    }
    let _ = panic::take_hook();

    println!(
        "documents: {} ({:.0} MiB) in {:.1} s",
        all.documents,
        bytes_total as f64 / MIB,
        started.elapsed().as_secs_f64()
    );
    all.print("", list);
    if past_version.documents > 0 {
        println!(
            "the {} documents refused for info.version, with it set to 1.0.0:",
            past_version.documents
        );
        past_version.print("    ", list);
    }
    let crashes = all.crashes.len() + past_version.crashes.len();
    println!("total crashes: {crashes}");
    if crashes > 0 {
        std::process::exit(1);
    }
}

/// The first example of a class (every one with `--list`), its message clipped to `width`.
fn print_examples(indent: &str, examples: &[Example], list: bool, width: usize) {
    let shown = if list { examples.len() } else { 1 };
    for (path, msg) in examples.iter().take(shown) {
        println!(
            "{indent}           e.g. {}: {}",
            path.display(),
            clip(msg, width)
        );
    }
}

// --- measure mode ------------------------------------------------------------------------

/// Which path of a document through the registry a `--step` child measures.
#[derive(Clone, Copy)]
enum Step {
    /// Registration: `openapi::parse` of the uploaded bytes, then the publish check
    /// (`compile_document` with default options: requests and responses).
    Register,
    /// Snapshot under the default policy: the stored JSON through `serde_json` and
    /// `parse_value`, then `compile_document` for requests only (responses `off`).
    Snapshot,
    /// Snapshot under a `report`/`enforce` response policy: responses compiled too.
    SnapshotResponses,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::Snapshot => "snapshot",
            Step::SnapshotResponses => "snapshot-responses",
        }
    }
    fn parse(s: &str) -> Option<Step> {
        [Step::Register, Step::Snapshot, Step::SnapshotResponses]
            .into_iter()
            .find(|st| st.name() == s)
    }
}

/// Runs each step in a fresh process of this example, so that no step starts from an
/// allocator warmed by another.
fn run_measure(file: &Path, limits: &Limits) {
    let exe = std::env::current_exe().unwrap_or_else(|e| {
        eprintln!("cannot find this program: {e}");
        std::process::exit(2);
    });
    let size = std::fs::metadata(file)
        .map(|m| m.len())
        .unwrap_or_else(|e| {
            eprintln!("{}: {e}", file.display());
            std::process::exit(2);
        });
    println!("{}: {:.1} MiB", file.display(), size as f64 / MIB);
    if size > limits.max_bytes as u64 {
        println!(
            "note: over the ingest limit of {} bytes (Limits::max_bytes): the registry refuses it \
             as is; measured with the limit raised to fit",
            limits.max_bytes
        );
    }
    let mut failed = false;
    for step in [Step::Register, Step::Snapshot, Step::SnapshotResponses] {
        let status = std::process::Command::new(&exe)
            .args([
                "--max-bytes",
                &limits.max_bytes.max(size as usize).to_string(),
            ])
            .args(["--step", step.name()])
            .arg(file)
            .status();
        failed |= !matches!(status, Ok(s) if s.success());
    }
    if failed {
        std::process::exit(1);
    }
}

fn run_step(step: Step, file: &Path, limits: &Limits) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| {
        eprintln!("{}: {e}", file.display());
        std::process::exit(2);
    });
    let rss0 = proc_status("VmRSS:");
    let mut peak = rss0;
    let title = match step {
        Step::Register => "registration (POST a version): ingest + publish check",
        Step::Snapshot => "snapshot, default policy (requests validated, responses off)",
        Step::SnapshotResponses => "snapshot, responses `report`/`enforce`",
    };
    println!("{title}; process RSS before: {:.1} MiB", rss0 as f64 / MIB);
    let (doc, c) = match step {
        Step::Register => measure(|| openapi::parse(&bytes, limits)),
        Step::Snapshot | Step::SnapshotResponses => {
            // The registry stores the spec as JSON: a JSON file is its own stored form.
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) if t.trim_start().starts_with('{') => t.to_owned(),
                _ => match openapi::parse(&bytes, limits) {
                    Ok(d) => d.tree.to_string(),
                    Err(e) => {
                        println!("  refused by ingest: {e}");
                        std::process::exit(1);
                    }
                },
            };
            drop(bytes);
            let (tree, c_tree) = measure(move || serde_json::from_str::<serde_json::Value>(&text));
            let tree = tree.unwrap_or_else(|e| {
                println!("  stored JSON does not parse: {e}");
                std::process::exit(1);
            });
            print_cost("  of which serde_json::from_str", &c_tree);
            peak = peak.max(rss0 + c_tree.rss_peak);
            let rss_tree = proc_status("VmRSS:");
            let (doc, c_model) = measure(move || openapi::parse_value(tree));
            print_cost("  of which openapi::parse_value", &c_model);
            let cost = Cost {
                wall: c_tree.wall + c_model.wall,
                rss_peak: (rss_tree + c_model.rss_peak).max(rss0 + c_tree.rss_peak) - rss0,
                rss_kept: proc_status("VmRSS:") as isize - rss0 as isize,
            };
            (doc, cost)
        }
    };
    peak = peak.max(rss0 + c.rss_peak);
    let doc = doc.unwrap_or_else(|e| {
        println!("  refused by ingest: {e}");
        std::process::exit(1);
    });
    let parse_step = match step {
        Step::Register => "parse (openapi::parse of the bytes)",
        _ => "parse (serde_json + openapi::parse_value)",
    };
    print_cost(parse_step, &c);
    let opts = CompileOptions {
        validate_responses: !matches!(step, Step::Snapshot),
        ..CompileOptions::default()
    };
    let ((ops, errors), c2) = measure(|| compile_document(&doc, &opts));
    let compile_step = if opts.validate_responses {
        "compile_document (requests + responses)"
    } else {
        "compile_document (requests only)"
    };
    print_cost(compile_step, &c2);
    peak = peak.max(proc_status("VmHWM:"));
    let kept = proc_status("VmRSS:") as isize - rss0 as isize;
    println!(
        "  {:<44} {:>7.3} s   peak RSS +{:>6.1} MiB   kept {:>+7.1} MiB",
        "total",
        (c.wall + c2.wall).as_secs_f64(),
        (peak - rss0) as f64 / MIB,
        kept as f64 / MIB
    );
    println!(
        "  operations: {} in the document, {} compiled; schemas left unchecked: {}",
        doc.operations().count(),
        ops.len(),
        errors.len()
    );
    for e in errors.iter().take(10) {
        println!("    unchecked: {}", clip(&e.to_string(), 200));
    }
    if let Err((template, class, message)) = route_check(&doc) {
        println!("  routes: NOT routable ({class}): path `{template}`: {message}");
    } else {
        println!("  routes: every path template fits the gateway's router");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut roots = Vec::new();
    let mut measure_file = None;
    let mut step = None;
    let mut limits = Limits::default();
    let (mut list, mut progress) = (false, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--measure" => measure_file = args.next().map(PathBuf::from),
            "--step" => {
                step = Some(
                    args.next()
                        .and_then(|s| Step::parse(&s))
                        .unwrap_or_else(|| usage()),
                )
            }
            "--max-bytes" => {
                limits.max_bytes = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
            }
            "--list" => list = true,
            "--progress" => progress = true,
            "-h" | "--help" => usage(),
            s if s.starts_with('-') => usage(),
            _ => roots.push(PathBuf::from(a)),
        }
    }
    if let Some(step) = step {
        match roots.as_slice() {
            [file] => return run_step(step, file, &limits),
            _ => usage(),
        }
    }
    match (measure_file, roots.is_empty()) {
        (Some(f), true) => run_measure(&f, &limits),
        (None, false) => run_corpus(&roots, &limits, list, progress),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: corpus [--max-bytes N] [--list] [--progress] FILE_OR_DIR...\n       \
         corpus [--max-bytes N] --measure FILE"
    );
    std::process::exit(2);
}
