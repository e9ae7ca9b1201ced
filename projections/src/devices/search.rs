//! Device search: a condition tree compiled to one SQL query over the
//! indexed `devices` / `device_properties` tables, paged by `device_key`.
//! The same SQL runs on SQLite and PostgreSQL (string columns compare
//! bytewise on both: `COLLATE "C"` on PostgreSQL).

use domain::conditions::{Condition, Key, Leaf, Op, version_key};
use domain::ids::AppId;
use uuid::Uuid;

use super::DeviceRecord;
use super::record::{COLUMNS, from_row};
use crate::db::Db;
use crate::on_db;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Uuid(Uuid),
    Str(String),
    Int(i64),
    Bool(bool),
}

/// The property rows without an integer (strings, list items, empty lists),
/// indexed by `device_properties_str`: every test of those rows names it,
/// so that the partial index serves the test.
const STRINGS: &str = "i IS NULL";
/// The rows with one (integers, booleans, integer-list items), indexed by
/// `device_properties_int`; an integer comparison implies it.
const INTEGERS: &str = "i IS NOT NULL";

/// Binds a compiled search's values ([`Compiled::binds`]) to an sqlx query
/// of either backend.
#[macro_export]
macro_rules! bind_search {
    ($query:expr, $binds:expr) => {{
        use $crate::devices::search::Bind;
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Uuid(u) => query.bind(*u),
                Bind::Str(s) => query.bind(s.as_str()),
                Bind::Int(i) => query.bind(*i),
                Bind::Bool(b) => query.bind(*b),
            };
        }
        query
    }};
}

/// A `WHERE` fragment over `devices d` and its bound values. `$1` is always
/// the app id.
#[derive(Debug, Default)]
pub struct Compiled {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Compiled {
    fn new(app_id: AppId) -> Self {
        Self {
            sql: String::new(),
            binds: vec![Bind::Uuid(app_id.0)],
        }
    }

    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn condition(&mut self, condition: &Condition) {
        match condition {
            Condition::All(children) => match merged_ranges(children) {
                Some((ranges, rest)) => {
                    let mut parts: Vec<String> = ranges
                        .iter()
                        .map(|(key, bounds)| self.range(key, bounds))
                        .collect();
                    for child in rest {
                        let mark = self.sql.len();
                        self.condition(child);
                        parts.push(self.sql.split_off(mark));
                    }
                    self.sql.push('(');
                    self.sql.push_str(&parts.join(" AND "));
                    self.sql.push(')');
                }
                None => self.group(children, " AND "),
            },
            Condition::Any(children) => self.group(children, " OR "),
            // A negated property test as an anti-join: `NOT EXISTS` lets
            // PostgreSQL walk devices in key order and stop at the page's
            // end, where `NOT IN` hashes every device that has the value.
            Condition::Not(inner) => match inner.as_ref() {
                Condition::Leaf(Leaf {
                    key: Key::Property(key),
                    op,
                }) if !matches!(op, Op::NotExists) => {
                    let (k, test) = self.property_test(key, op);
                    self.sql.push_str(&format!(
                        "NOT EXISTS (SELECT 1 FROM device_properties p WHERE p.device_key = d.device_key \
                         AND p.app_id = $1 AND p.key = {k} AND {test})"
                    ));
                }
                _ => {
                    self.sql.push_str("(NOT ");
                    self.condition(inner);
                    self.sql.push(')');
                }
            },
            Condition::Leaf(leaf) => self.leaf(leaf),
        }
    }

    fn group(&mut self, children: &[Condition], joiner: &str) {
        self.sql.push('(');
        for (i, child) in children.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(joiner);
            }
            self.condition(child);
        }
        self.sql.push(')');
    }

    fn leaf(&mut self, leaf: &Leaf) {
        let sql = match &leaf.key {
            Key::Property(key) => self.property(key, &leaf.op),
            Key::DevicePlatform => self.column("d.device_platform", &leaf.op, false),
            Key::SendPlatform => self.column("d.send_platform", &leaf.op, false),
            Key::UserId => self.column("d.user_id", &leaf.op, true),
            Key::RandomBucket => self.column("d.random_bucket", &leaf.op, false),
            Key::HasPermission => self.column("d.has_permission", &leaf.op, false),
            Key::ExternalId => self.column("d.external_id", &leaf.op, false),
        };
        self.sql.push_str(&sql);
    }

    /// A leaf over a built-in column. Nullable columns (user_id) behave like
    /// a missing property when null.
    fn column(&mut self, column: &str, op: &Op, nullable: bool) -> String {
        let wrap = |test: String| {
            if nullable {
                format!("COALESCE({test}, FALSE)")
            } else {
                test
            }
        };
        match op {
            Op::IntEq(v) => wrap(format!("{column} = {}", self.bind(Bind::Int(*v)))),
            Op::IntGt(v) => wrap(format!("{column} > {}", self.bind(Bind::Int(*v)))),
            Op::IntGte(v) => wrap(format!("{column} >= {}", self.bind(Bind::Int(*v)))),
            Op::IntLt(v) => wrap(format!("{column} < {}", self.bind(Bind::Int(*v)))),
            Op::IntLte(v) => wrap(format!("{column} <= {}", self.bind(Bind::Int(*v)))),
            Op::StrEq(v) => wrap(format!("{column} = {}", self.bind(Bind::Str(v.clone())))),
            Op::StrNe(v) => wrap(format!("{column} <> {}", self.bind(Bind::Str(v.clone())))),
            Op::StrIn(values) => {
                let list = values
                    .iter()
                    .map(|v| self.bind(Bind::Str(v.clone())))
                    .collect::<Vec<_>>()
                    .join(", ");
                wrap(format!("{column} IN ({list})"))
            }
            Op::StrPrefix(p) => {
                let p = self.bind(Bind::Str(p.clone()));
                wrap(format!("substr({column}, 1, length({p})) = {p}"))
            }
            Op::BoolEq(b) => format!("{column} = {}", self.bind(Bind::Bool(*b))),
            Op::Exists => {
                if nullable {
                    format!("{column} IS NOT NULL")
                } else {
                    "TRUE".into()
                }
            }
            Op::NotExists => {
                if nullable {
                    format!("{column} IS NULL")
                } else {
                    "FALSE".into()
                }
            }
            // Built-in strings are neither lists nor versions.
            Op::StrExists(_) | Op::IntExists(_) | Op::VersionGte(_) | Op::VersionLt(_) => {
                "FALSE".into()
            }
        }
    }

    /// A leaf over a property: a semi-join into `device_properties`.
    fn property(&mut self, key: &str, op: &Op) -> String {
        if matches!(op, Op::NotExists) {
            let k = self.bind(Bind::Str(key.to_owned()));
            return format!(
                "NOT EXISTS (SELECT 1 FROM device_properties p WHERE p.device_key = d.device_key AND p.key = {k})"
            );
        }
        let (k, test) = self.property_test(key, op);
        let semi = |test: &str| {
            format!(
                "d.device_key IN (SELECT device_key FROM device_properties WHERE app_id = $1 AND key = {k} AND {test})"
            )
        };
        if matches!(op, Op::Exists) {
            // Any row of the key: one half through each partial index.
            return format!("({} OR {})", semi(STRINGS), semi(INTEGERS));
        }
        semi(&test)
    }

    /// The key's placeholder and the row test of a property leaf (any
    /// operator but `not_exists`).
    fn property_test(&mut self, key: &str, op: &Op) -> (String, String) {
        let k = self.bind(Bind::Str(key.to_owned()));
        let test = match op {
            Op::IntEq(v) => format!("kind = 'i' AND i = {}", self.bind(Bind::Int(*v))),
            Op::IntGt(v) => format!("kind = 'i' AND i > {}", self.bind(Bind::Int(*v))),
            Op::IntGte(v) => format!("kind = 'i' AND i >= {}", self.bind(Bind::Int(*v))),
            Op::IntLt(v) => format!("kind = 'i' AND i < {}", self.bind(Bind::Int(*v))),
            Op::IntLte(v) => format!("kind = 'i' AND i <= {}", self.bind(Bind::Int(*v))),
            Op::StrEq(v) => format!(
                "kind = 's' AND s = {} AND {STRINGS}",
                self.bind(Bind::Str(v.clone()))
            ),
            Op::StrNe(v) => format!(
                "kind = 's' AND s <> {} AND {STRINGS}",
                self.bind(Bind::Str(v.clone()))
            ),
            Op::StrIn(values) => {
                let list = values
                    .iter()
                    .map(|v| self.bind(Bind::Str(v.clone())))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("kind = 's' AND s IN ({list}) AND {STRINGS}")
            }
            Op::StrPrefix(p) => self.prefix(p),
            Op::StrExists(v) => format!(
                "kind = 'l' AND s = {} AND {STRINGS}",
                self.bind(Bind::Str(v.clone()))
            ),
            Op::IntExists(v) => format!("kind = 'n' AND i = {}", self.bind(Bind::Int(*v))),
            Op::BoolEq(b) => format!("kind = 'b' AND i = {}", self.bind(Bind::Int(i64::from(*b)))),
            Op::Exists => "TRUE".into(),
            // Not a row test: `property` and `condition` handle it.
            Op::NotExists => "FALSE".into(),
            Op::VersionGte(v) => {
                format!(
                    "v >= {}",
                    self.bind(Bind::Str(version_key(v).unwrap_or_default()))
                )
            }
            Op::VersionLt(v) => {
                format!(
                    "v < {}",
                    self.bind(Bind::Str(version_key(v).unwrap_or_default()))
                )
            }
        };
        (k, test)
    }

    /// Several integer bounds on one property as a single index range: a
    /// property holds one integer at most, so "some row >= a and some row
    /// < b" is "one row in [a, b)".
    fn range(&mut self, key: &str, bounds: &[&Op]) -> String {
        let k = self.bind(Bind::Str(key.to_owned()));
        let mut test = String::from("kind = 'i'");
        for op in bounds {
            let (cmp, v) = match op {
                Op::IntGt(v) => (">", v),
                Op::IntGte(v) => (">=", v),
                Op::IntLt(v) => ("<", v),
                Op::IntLte(v) => ("<=", v),
                _ => continue,
            };
            test.push_str(&format!(" AND i {cmp} {}", self.bind(Bind::Int(*v))));
        }
        format!(
            "d.device_key IN (SELECT device_key FROM device_properties WHERE app_id = $1 AND key = {k} AND {test})"
        )
    }

    /// `s` starts with `p`: an index range [p, next(p)) where possible.
    fn prefix(&mut self, p: &str) -> String {
        if p.is_empty() {
            return format!("kind = 's' AND {STRINGS}");
        }
        let low = self.bind(Bind::Str(p.to_owned()));
        match successor(p) {
            Some(high) => format!(
                "kind = 's' AND s >= {low} AND s < {} AND {STRINGS}",
                self.bind(Bind::Str(high))
            ),
            None => format!(
                "kind = 's' AND s >= {low} AND substr(s, 1, length({low})) = {low} AND {STRINGS}"
            ),
        }
    }
}

/// Integer-bound leaves of an AND group on the same property, merged per
/// key, and the other children; `None` when nothing merges.
type Ranges<'a> = (Vec<(&'a str, Vec<&'a Op>)>, Vec<&'a Condition>);

fn merged_ranges(children: &[Condition]) -> Option<Ranges<'_>> {
    let mut ranges: Vec<(&str, Vec<&Op>)> = Vec::new();
    let mut rest = Vec::new();
    for child in children {
        match child {
            Condition::Leaf(Leaf {
                key: Key::Property(key),
                op: op @ (Op::IntGt(_) | Op::IntGte(_) | Op::IntLt(_) | Op::IntLte(_)),
            }) => match ranges.iter_mut().find(|(k, _)| k == key) {
                Some((_, ops)) => ops.push(op),
                None => ranges.push((key.as_str(), vec![op])),
            },
            other => rest.push(other),
        }
    }
    (ranges.len() + rest.len() < children.len()).then_some((ranges, rest))
}

/// The smallest string greater than every string starting with `p`
/// (bytewise UTF-8 order is code point order).
fn successor(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A leaf that one index can answer in key order: a positive property test
/// or a built-in column test.
fn is_simple_leaf(condition: &Condition) -> bool {
    matches!(condition, Condition::Leaf(leaf) if !matches!(leaf.op, Op::NotExists))
}

impl Compiled {
    /// A page of a top-level OR of simple leaves, as the union of each
    /// leaf's own first page after the cursor. Exact: every device of the
    /// OR's page matches some leaf, and fewer than a page of that leaf's
    /// matches can come before it (property rows exist only for live
    /// devices). It spares PostgreSQL from hashing every leaf's whole match
    /// set before the first row.
    fn first_pages(&mut self, children: &[Condition], after: &str, fetch: &str) -> String {
        let mut branches = Vec::with_capacity(children.len());
        for (i, child) in children.iter().enumerate() {
            let Condition::Leaf(leaf) = child else {
                continue;
            };
            let branch = match &leaf.key {
                Key::Property(key) => {
                    let (k, test) = self.property_test(key, &leaf.op);
                    let page = |test: &str| {
                        format!(
                            "SELECT device_key FROM device_properties WHERE app_id = $1 AND key = {k} \
                             AND device_key > {after} AND {test} ORDER BY device_key LIMIT {fetch}"
                        )
                    };
                    if matches!(leaf.op, Op::Exists) {
                        // Any row of the key: a page from each partial index.
                        format!(
                            "SELECT device_key FROM ({}) s{i} UNION ALL SELECT device_key FROM ({}) n{i}",
                            page(STRINGS),
                            page(INTEGERS)
                        )
                    } else {
                        page(&test)
                    }
                }
                _ => {
                    let mark = self.sql.len();
                    self.leaf(leaf);
                    let test = self.sql.split_off(mark);
                    format!(
                        "SELECT d.device_key FROM devices d WHERE d.app_id = $1 \
                         AND d.device_key > {after} AND {test} ORDER BY d.device_key LIMIT {fetch}"
                    )
                }
            };
            branches.push(format!("SELECT device_key FROM ({branch}) b{i}"));
        }
        branches.join(" UNION ALL ")
    }
}

/// Compiles a search: `None` matches every device.
pub fn compile(app_id: AppId, condition: Option<&Condition>) -> Compiled {
    let mut compiled = Compiled::new(app_id);
    match condition {
        Some(c) => compiled.condition(c),
        None => compiled.sql.push_str("TRUE"),
    }
    compiled
}

/// One page of a search.
#[derive(Debug, Clone)]
pub struct Page {
    pub devices: Vec<DeviceRecord>,
    /// The `device_key` to continue after, if there may be more.
    pub next_after: Option<i64>,
}

/// The query of one page of a search (see [`search`]) and its bound
/// values; `$1` is the app id.
pub fn statement(
    app_id: AppId,
    condition: Option<&Condition>,
    after_key: i64,
    limit: i64,
) -> (String, Compiled) {
    let (compiled, sql) = match condition {
        Some(Condition::Any(children)) if children.iter().all(is_simple_leaf) => {
            let mut compiled = Compiled::new(app_id);
            let after = compiled.bind(Bind::Int(after_key));
            let fetch = compiled.bind(Bind::Int(limit + 1));
            let union = compiled.first_pages(children, &after, &fetch);
            let sql = format!(
                "SELECT {COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.device_key > {after} \
                 AND d.device_key IN ({union}) ORDER BY d.device_key LIMIT {fetch}"
            );
            (compiled, sql)
        }
        _ => {
            let mut compiled = compile(app_id, condition);
            let after = compiled.bind(Bind::Int(after_key));
            let fetch = compiled.bind(Bind::Int(limit + 1));
            let sql = format!(
                "SELECT {COLUMNS} FROM devices d WHERE d.app_id = $1 AND d.device_key > {after} AND ({}) \
                 ORDER BY d.device_key LIMIT {fetch}",
                compiled.sql
            );
            (compiled, sql)
        }
    };
    (sql, compiled)
}

/// Devices of the app matching `condition`, in `device_key` order, after
/// `after_key`, at most `limit`.
pub async fn search(
    db: &Db,
    app_id: AppId,
    condition: Option<&Condition>,
    after_key: i64,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let (sql, compiled) = statement(app_id, condition, after_key, limit);
    let mut devices = on_db!(db, |pool| {
        let query = crate::bind_search!(sqlx::query(sql.as_str()), &compiled.binds);
        let rows = query.fetch_all(pool).await?;
        rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?
    });
    let more = devices.len() as i64 > limit;
    devices.truncate(usize::try_from(limit).unwrap_or(0));
    let next_after = if more {
        devices.last().map(|d| d.device_key)
    } else {
        None
    };
    Ok(Page {
        devices,
        next_after,
    })
}

#[cfg(test)]
mod tests;
