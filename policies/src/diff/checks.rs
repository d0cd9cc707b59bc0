//! The catalogue of diff checks: every stable check id, its fixed severity, its category
//! and a one-line meaning. The engine emits only ids from here; `docs/checks.md` is
//! generated from it (a test keeps the two equal).
//!
//! Two families. [`Check`] holds the checks about the shape of the API (paths,
//! operations, parameters, bodies, responses, security, deprecation). [`SchemaChange`]
//! holds the changes of a schema's value constraints; each exists once per [`Scope`]
//! (`parameter-`, `request-body-`, `response-body-`, `response-header-`) because the
//! same change is breaking on one side and harmless on the other: narrowing what a
//! request accepts breaks clients, and so does widening what a response may return.

use super::report::Severity;

/// Where a finding belongs, for the docs and the closing counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    PathsAndOperations,
    Parameters,
    RequestBodies,
    Responses,
    Security,
    Deprecation,
    /// What the engine could not check.
    Limits,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::PathsAndOperations,
        Category::Parameters,
        Category::RequestBodies,
        Category::Responses,
        Category::Security,
        Category::Deprecation,
        Category::Limits,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Category::PathsAndOperations => "Paths and operations",
            Category::Parameters => "Parameters",
            Category::RequestBodies => "Request bodies",
            Category::Responses => "Responses",
            Category::Security => "Security",
            Category::Deprecation => "Deprecation",
            Category::Limits => "Limits of the comparison",
        }
    }
}

/// One row of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub category: Category,
    pub meaning: &'static str,
}

macro_rules! checks {
    ($( $variant:ident = $id:literal, $sev:ident, $cat:ident, $meaning:literal; )*) => {
        /// A check about the shape of the API (everything but schema value constraints).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Check { $($variant,)* }

        impl Check {
            pub const ALL: &'static [Check] = &[$(Check::$variant,)*];

            pub fn info(self) -> CheckInfo {
                match self {
                    $(Check::$variant => CheckInfo {
                        id: $id,
                        severity: Severity::$sev,
                        category: Category::$cat,
                        meaning: $meaning,
                    },)*
                }
            }
        }
    };
}

checks! {
    PathRemoved = "path-removed", Breaking, PathsAndOperations,
        "A path with at least one operation that was not deprecated was removed.";
    PathAdded = "path-added", Info, PathsAndOperations,
        "A new path.";
    OperationRemoved = "operation-removed", Breaking, PathsAndOperations,
        "An operation that was not deprecated was removed (its path remains).";
    OperationAdded = "operation-added", Info, PathsAndOperations,
        "A new operation on an existing path.";
    OperationIdChanged = "operation-id-changed", Warning, PathsAndOperations,
        "The operationId changed: generated clients rename the method, dashboards keyed by it lose history.";
    PathParameterRenamed = "path-parameter-renamed", Info, PathsAndOperations,
        "A path parameter was renamed; the URL clients call is the same.";

    ParameterAddedRequired = "parameter-added-required", Breaking, Parameters,
        "A new required query, header or cookie parameter: existing calls lack it.";
    ParameterAdded = "parameter-added", Info, Parameters,
        "A new optional parameter.";
    ParameterRemoved = "parameter-removed", Warning, Parameters,
        "A parameter was removed: calls still succeed but the value is silently ignored.";
    ParameterBecameRequired = "parameter-became-required", Breaking, Parameters,
        "An optional parameter became required.";
    ParameterBecameOptional = "parameter-became-optional", Info, Parameters,
        "A required parameter became optional.";
    ParameterLocationChanged = "parameter-location-changed", Breaking, Parameters,
        "A parameter moved (e.g. from query to header): clients send it in the old place.";
    ParameterStyleChanged = "parameter-style-changed", Breaking, Parameters,
        "The serialization style of an array or object parameter changed.";
    ParameterExplodeChanged = "parameter-explode-changed", Breaking, Parameters,
        "The `explode` flag of an array or object parameter changed.";

    RequestBodyAddedRequired = "request-body-added-required", Breaking, RequestBodies,
        "An operation without a request body now requires one.";
    RequestBodyAdded = "request-body-added", Info, RequestBodies,
        "An operation gained an optional request body.";
    RequestBodyRemoved = "request-body-removed", Warning, RequestBodies,
        "The request body was removed: what clients send is ignored or refused.";
    RequestBodyBecameRequired = "request-body-became-required", Breaking, RequestBodies,
        "An optional request body became required.";
    RequestBodyBecameOptional = "request-body-became-optional", Info, RequestBodies,
        "A required request body became optional.";
    RequestBodyMediaTypeRemoved = "request-body-media-type-removed", Breaking, RequestBodies,
        "A request media type is no longer accepted (415 for clients using it).";
    RequestBodyMediaTypeAdded = "request-body-media-type-added", Info, RequestBodies,
        "A new request media type is accepted.";
    RequestPropertyAddedRequired = "request-property-added-required", Breaking, RequestBodies,
        "A new required property in a request schema: existing requests lack it.";
    RequestPropertyAdded = "request-property-added", Info, RequestBodies,
        "A new optional property in a request schema.";
    RequestPropertyBecameRequired = "request-property-became-required", Breaking, RequestBodies,
        "An optional request property became required.";
    RequestPropertyBecameOptional = "request-property-became-optional", Info, RequestBodies,
        "A required request property became optional.";
    RequestPropertyRemoved = "request-property-removed", Breaking, RequestBodies,
        "A request property was removed from an object that forbids other properties: requests sending it are refused.";
    RequestPropertyNoLongerDocumented = "request-property-no-longer-documented", Warning, RequestBodies,
        "A request property was removed from an object that still accepts other properties: it is silently ignored.";

    ResponseSuccessStatusRemoved = "response-success-status-removed", Breaking, Responses,
        "A documented 2xx response was removed.";
    ResponseErrorStatusRemoved = "response-error-status-removed", Info, Responses,
        "A documented non-2xx response was removed.";
    ResponseSuccessStatusAdded = "response-success-status-added", Warning, Responses,
        "A new 2xx status: clients written for the old ones may not handle it.";
    ResponseErrorStatusAdded = "response-error-status-added", Info, Responses,
        "A new non-2xx status is documented.";
    ResponseMediaTypeRemoved = "response-media-type-removed", Breaking, Responses,
        "A response media type is no longer produced.";
    ResponseMediaTypeAdded = "response-media-type-added", Info, Responses,
        "A response may now be produced in a new media type (negotiated by `Accept`).";
    ResponseRequiredPropertyRemoved = "response-required-property-removed", Breaking, Responses,
        "A property responses always carried was removed.";
    ResponsePropertyRemoved = "response-property-removed", Warning, Responses,
        "An optional response property was removed.";
    ResponsePropertyBecameOptional = "response-property-became-optional", Breaking, Responses,
        "A property responses always carried may now be absent.";
    ResponsePropertyBecameRequired = "response-property-became-required", Info, Responses,
        "An optional response property is now always present.";
    ResponsePropertyAdded = "response-property-added", Info, Responses,
        "A new response property.";
    ResponseRequiredHeaderRemoved = "response-required-header-removed", Breaking, Responses,
        "A required response header was removed.";
    ResponseHeaderRemoved = "response-header-removed", Warning, Responses,
        "An optional response header was removed.";
    ResponseHeaderBecameOptional = "response-header-became-optional", Breaking, Responses,
        "A required response header may now be absent.";
    ResponseHeaderAdded = "response-header-added", Info, Responses,
        "A new response header.";

    SecurityRequirementAdded = "security-requirement-added", Breaking, Security,
        "An operation needs a credential (or a combination of schemes) that was not needed before.";
    SecurityScopeAdded = "security-scope-added", Breaking, Security,
        "An operation needs a scope its callers' credentials may not hold.";
    SecurityRequirementRemoved = "security-requirement-removed", Info, Security,
        "An operation can now be called without credentials (review it).";
    SecuritySchemeChanged = "security-scheme-changed", Breaking, Security,
        "A security scheme in use changed how credentials are presented (type, header or query name, HTTP scheme).";

    OperationBecameDeprecated = "operation-became-deprecated", Info, Deprecation,
        "An operation is now deprecated.";
    OperationRemovedBeforeSunset = "operation-removed-before-sunset", Breaking, Deprecation,
        "A deprecated operation was removed before its `x-sunset` date (or with no date to compare with).";
    DeprecatedOperationRemoved = "deprecated-operation-removed", Info, Deprecation,
        "A deprecated operation was removed after its `x-sunset` date.";
    DeprecatedOperationRemovedWithoutSunset = "deprecated-operation-removed-without-sunset", Warning, Deprecation,
        "A deprecated operation without an `x-sunset` date was removed: clients had no date to plan for.";
    OperationSunsetBroughtForward = "operation-sunset-brought-forward", Warning, Deprecation,
        "The `x-sunset` date of a deprecated operation moved earlier.";
    ParameterBecameDeprecated = "parameter-became-deprecated", Info, Deprecation,
        "A parameter is now deprecated.";

    SchemaComparisonTruncated = "schema-comparison-truncated", Warning, Limits,
        "Schemas nest deeper than 200 levels or are too large to compare fully; changes past this point were not checked.";
}

/// Where a schema sits, which decides both the id prefix and the direction rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Parameter,
    RequestBody,
    ResponseBody,
    ResponseHeader,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::Parameter,
        Scope::RequestBody,
        Scope::ResponseBody,
        Scope::ResponseHeader,
    ];

    /// Whether clients send values of this schema (requests) or receive them (responses).
    pub fn is_request(self) -> bool {
        matches!(self, Scope::Parameter | Scope::RequestBody)
    }

    pub fn category(self) -> Category {
        match self {
            Scope::Parameter => Category::Parameters,
            Scope::RequestBody => Category::RequestBodies,
            Scope::ResponseBody | Scope::ResponseHeader => Category::Responses,
        }
    }
}

macro_rules! schema_changes {
    ($( $variant:ident = $suffix:literal, $rq:ident / $rs:ident, $meaning:literal; )*) => {
        /// A change of a schema's value constraints; exists once per [`Scope`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SchemaChange { $($variant,)* }

        impl SchemaChange {
            pub const ALL: &'static [SchemaChange] = &[$(SchemaChange::$variant,)*];

            pub fn info(self, scope: Scope) -> CheckInfo {
                let (id, request, response, meaning) = match (self, scope) {
                    $(
                        (SchemaChange::$variant, Scope::Parameter) =>
                            (concat!("parameter-", $suffix), Severity::$rq, Severity::$rs, $meaning),
                        (SchemaChange::$variant, Scope::RequestBody) =>
                            (concat!("request-body-", $suffix), Severity::$rq, Severity::$rs, $meaning),
                        (SchemaChange::$variant, Scope::ResponseBody) =>
                            (concat!("response-body-", $suffix), Severity::$rq, Severity::$rs, $meaning),
                        (SchemaChange::$variant, Scope::ResponseHeader) =>
                            (concat!("response-header-", $suffix), Severity::$rq, Severity::$rs, $meaning),
                    )*
                };
                CheckInfo {
                    id,
                    severity: if scope.is_request() { request } else { response },
                    category: scope.category(),
                    meaning,
                }
            }
        }
    };
}

// Severities are `request / response`. A change that narrows the set of valid values is
// breaking for requests and harmless for responses; one that widens it is the reverse.
// Widening a response is a warning rather than breaking where well-written clients cope
// (a bound they rarely enforce, a new enum value they should treat as unknown).
schema_changes! {
    TypeChanged = "type-changed", Breaking / Breaking,
        "The type changed to an incompatible one.";
    TypeNarrowed = "type-narrowed", Breaking / Info,
        "Fewer types are allowed (e.g. number to integer, or a type where there was none).";
    TypeWidened = "type-widened", Info / Breaking,
        "More types are allowed (e.g. integer to number, or a type array grew).";
    FormatChanged = "format-changed", Breaking / Breaking,
        "The format changed to an unrelated one (e.g. date to date-time).";
    FormatNarrowed = "format-narrowed", Breaking / Info,
        "A format was added or narrowed (int64 to int32, double to float).";
    FormatWidened = "format-widened", Info / Breaking,
        "A format was removed or widened (int32 to int64, float to double).";
    EnumValueRemoved = "enum-value-removed", Breaking / Info,
        "Enum values were removed.";
    EnumValueAdded = "enum-value-added", Info / Warning,
        "Enum values were added.";
    EnumAdded = "enum-added", Breaking / Info,
        "An enum now restricts a value that was free.";
    EnumRemoved = "enum-removed", Info / Warning,
        "The enum restricting a value was removed.";
    MaxLengthDecreased = "max-length-decreased", Breaking / Info,
        "`maxLength` was lowered or added.";
    MaxLengthIncreased = "max-length-increased", Info / Warning,
        "`maxLength` was raised or removed.";
    MinLengthIncreased = "min-length-increased", Breaking / Info,
        "`minLength` was raised or added.";
    MinLengthDecreased = "min-length-decreased", Info / Warning,
        "`minLength` was lowered or removed.";
    MaximumDecreased = "maximum-decreased", Breaking / Info,
        "The upper bound (`maximum`, `exclusiveMaximum`) was lowered, made exclusive or added.";
    MaximumIncreased = "maximum-increased", Info / Warning,
        "The upper bound was raised, made inclusive or removed.";
    MinimumIncreased = "minimum-increased", Breaking / Info,
        "The lower bound (`minimum`, `exclusiveMinimum`) was raised, made exclusive or added.";
    MinimumDecreased = "minimum-decreased", Info / Warning,
        "The lower bound was lowered, made inclusive or removed.";
    MaxItemsDecreased = "max-items-decreased", Breaking / Info,
        "`maxItems` was lowered or added.";
    MaxItemsIncreased = "max-items-increased", Info / Warning,
        "`maxItems` was raised or removed.";
    MinItemsIncreased = "min-items-increased", Breaking / Info,
        "`minItems` was raised or added.";
    MinItemsDecreased = "min-items-decreased", Info / Warning,
        "`minItems` was lowered or removed.";
    UniqueItemsAdded = "unique-items-added", Breaking / Info,
        "`uniqueItems: true` was added.";
    UniqueItemsRemoved = "unique-items-removed", Info / Warning,
        "`uniqueItems: true` was removed.";
    PatternAdded = "pattern-added", Breaking / Info,
        "A `pattern` was added.";
    PatternRemoved = "pattern-removed", Info / Warning,
        "The `pattern` was removed.";
    PatternChanged = "pattern-changed", Breaking / Warning,
        "The `pattern` changed (whether it narrows cannot be decided, so requests assume it does).";
    NullableRemoved = "nullable-removed", Breaking / Info,
        "`null` is no longer allowed (3.0 `nullable`, 3.1 `null` in `type`, or a `null` alternative).";
    NullableAdded = "nullable-added", Info / Breaking,
        "`null` is now allowed.";
    AdditionalPropertiesClosed = "additional-properties-closed", Breaking / Info,
        "The object now forbids properties it does not list (`additionalProperties: false`).";
    AdditionalPropertiesOpened = "additional-properties-opened", Info / Warning,
        "The object now allows properties it does not list.";
    AlternativeRemoved = "alternative-removed", Breaking / Info,
        "A `oneOf`/`anyOf` alternative was removed.";
    AlternativeAdded = "alternative-added", Info / Breaking,
        "A `oneOf`/`anyOf` alternative was added.";
}

/// Every check id the engine can emit, in catalogue order (shape checks, then schema
/// changes scope by scope).
pub fn catalogue() -> Vec<CheckInfo> {
    let mut out: Vec<CheckInfo> = Check::ALL.iter().map(|c| c.info()).collect();
    for scope in Scope::ALL {
        out.extend(SchemaChange::ALL.iter().map(|c| c.info(scope)));
    }
    out
}

/// Looks a check id up in the catalogue.
pub fn lookup(id: &str) -> Option<CheckInfo> {
    catalogue().into_iter().find(|c| c.id == id)
}

/// The catalogue as the Markdown of `docs/checks.md`.
pub fn catalogue_markdown() -> String {
    let all = catalogue();
    let mut out = String::from(
        "# Diff checks\n\n\
         <!-- Generated from `policies/src/diff/checks.rs`; a test keeps this file equal to it. \
         Regenerate with `GATEHOUSE_WRITE_DOCS=1 cargo test -p gatehouse-policies --test diff_checks`. -->\n\n\
         `gatehouse spec diff` and the publish gate compare two versions of a spec and report \
         findings, each with one of these stable ids and a fixed severity:\n\n\
         - **breaking**: existing clients fail (the publish gate refuses it within a major);\n\
         - **warning**: clients may misbehave, a human should look;\n\
         - **info**: compatible change, listed for the changelog.\n\n\
         The rule behind every severity: *narrowing what a request accepts, or widening what a \
         response may return, breaks clients*. Schemas are compared by structure through \
         `$ref`s (renaming a component is not a change), with `allOf` merged, `oneOf`/`anyOf` \
         alternatives matched to each other, recursion stopped at pairs already compared, and \
         both dialects read: 3.0 `nullable` and boolean `exclusiveMinimum`/`exclusiveMaximum`, \
         3.1 type arrays with `null` and numeric exclusive bounds.\n\n",
    );
    out.push_str(
        "| category | checks | breaking | warning | info |\n| --- | --- | --- | --- | --- |\n",
    );
    for category in Category::ALL {
        let of: Vec<&CheckInfo> = all.iter().filter(|c| c.category == category).collect();
        let count = |s: Severity| of.iter().filter(|c| c.severity == s).count();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            category.title(),
            of.len(),
            count(Severity::Breaking),
            count(Severity::Warning),
            count(Severity::Info)
        ));
    }
    out.push_str(&format!("| **all** | **{}** | | | |\n\n", all.len()));
    out.push_str("## Shape checks\n\n");
    for category in Category::ALL {
        let rows: Vec<CheckInfo> = Check::ALL
            .iter()
            .map(|c| c.info())
            .filter(|c| c.category == category)
            .collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "### {}\n\n| id | severity | meaning |\n| --- | --- | --- |\n",
            category.title()
        ));
        for c in rows {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                c.id,
                c.severity.as_str(),
                c.meaning
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "## Schema value checks\n\n\
         Each change below exists under four prefixes, with the severity of its side: \
         `parameter-` and `request-body-` (request side) and `response-body-` and \
         `response-header-` (response side). For example `request-body-max-length-decreased` \
         is breaking and `response-body-max-length-decreased` is info. Property membership \
         (`request-property-*`, `response-property-*`) is listed above; in requests \
         `readOnly` properties are skipped, in responses `writeOnly` ones.\n\n\
         | change | request side | response side | meaning |\n| --- | --- | --- | --- |\n",
    );
    for change in SchemaChange::ALL {
        let rq = change.info(Scope::RequestBody);
        let rs = change.info(Scope::ResponseBody);
        let suffix = rq.id.trim_start_matches("request-body-");
        out.push_str(&format!(
            "| `{suffix}` | {} | {} | {} |\n",
            rq.severity.as_str(),
            rs.severity.as_str(),
            rq.meaning
        ));
    }
    out.push_str(LIMITS);
    out.push_str("\n## All ids\n\n| id | severity |\n| --- | --- |\n");
    for c in &all {
        out.push_str(&format!("| `{}` | {} |\n", c.id, c.severity.as_str()));
    }
    out
}

/// What the engine does not compare, for the docs.
const LIMITS: &str = "\n## Not compared\n\n\
- `servers`, descriptions, summaries, examples, `externalDocs`, tags, links, callbacks \
and webhooks.\n\
- Schema keywords `not`, `if`/`then`/`else`, `multipleOf`, `minProperties`/`maxProperties`, \
`patternProperties`, `prefixItems`, `dependentRequired`, `discriminator`, `default`; \
`readOnly`/`writeOnly` only decide which side of a request or response a property is on.\n\
- In 3.1, keywords beside a `$ref` are ignored (as in 3.0).\n\
- Media types are matched exactly (without parameters); `application/*` ranges are not \
expanded.\n\
- Schema walks stop after 200 nested levels or 100,000 compared pairs per site; \
`schema-comparison-truncated` then says where.\n";
