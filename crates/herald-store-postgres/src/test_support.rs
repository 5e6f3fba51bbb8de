//! What the crate's own tests share: fresh databases on the test server, and the check that a
//! plan reads by key.

use tokio_postgres::{Client, Config, NoTls};

/// The test server (`HERALD_TEST_POSTGRES_URL`, or the local one), as the integration tests use.
fn server_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn admin_client() -> Client {
    let server = server_url();
    let (admin, connection) = tokio_postgres::connect(&server, NoTls)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {server} is needed: {error}"));
    tokio::spawn(connection);
    admin
}

/// Creates an empty database, named like the integration tests' ones so that a run that dies
/// before dropping it leaves it to their clean-up, and returns its name and its configuration.
pub(crate) async fn fresh_database() -> (String, Config) {
    let name = format!(
        "herald_test_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    admin_client()
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("database created");
    let config = database_config(&name);
    (name, config)
}

/// The URL of the test server's database `name`.
pub(crate) fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&server_url()).expect("the test server's URL");
    url.set_path(name);
    url.to_string()
}

/// The connection configuration of the test server's database `name`.
pub(crate) fn database_config(name: &str) -> Config {
    database_url(name).parse().expect("a test database's URL")
}

pub(crate) async fn drop_database(name: &str) {
    admin_client()
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("dropped");
}

/// The names of the database's unique indexes.
pub(crate) async fn unique_indexes(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indisunique",
            &[],
        )
        .await
        .expect("unique indexes")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// What in an `EXPLAIN (FORMAT JSON)` plan does not read by key: a sequential scan, a hash or
/// merge join (each reads a whole side), an index scan with no condition that is not the start
/// of a `LIMIT`ed walk, or one that filters on an equality with a parameter or another
/// relation's column (a key its index does not hold) unless the index is unique.
pub(crate) fn unkeyed_nodes(plan: &serde_json::Value, unique_indexes: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    walk(plan, "", unique_indexes, &mut found);
    found
}

fn walk(
    plan: &serde_json::Value,
    parent: &str,
    unique_indexes: &[String],
    found: &mut Vec<String>,
) {
    let node_type = plan["Node Type"].as_str().unwrap_or_default();
    let relation = plan["Relation Name"].as_str().unwrap_or_default();
    let alias = plan["Alias"].as_str().unwrap_or_default();
    let index = plan["Index Name"].as_str().unwrap_or_default();
    let filter = plan["Filter"].as_str().unwrap_or_default();
    let is_index_scan = matches!(
        node_type,
        "Index Scan" | "Index Only Scan" | "Bitmap Index Scan"
    );
    if matches!(node_type, "Seq Scan" | "Hash Join" | "Merge Join") {
        found.push(format!("{node_type} {relation}"));
    } else if is_index_scan && plan["Index Cond"].is_null() && parent != "Limit" {
        found.push(format!("{node_type} using {index} without a key"));
    } else if is_index_scan
        && filters_on_a_key(filter, alias)
        && !unique_indexes.iter().any(|unique| unique == index)
    {
        found.push(format!("{node_type} using {index} filtered by {filter}"));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        walk(child, node_type, unique_indexes, found);
    }
}

/// Whether `filter` holds `(a = b)` with `a` a column of the scanned relation (`alias`) and `b`
/// a parameter or another relation's column, or the other way round.
fn filters_on_a_key(filter: &str, alias: &str) -> bool {
    let own_column = |side: &str| {
        !side.contains('$')
            && (!side.contains('.') || side.starts_with(&format!("{alias}.")))
            && !side.starts_with('\'')
    };
    let key = |side: &str| {
        side.contains('$') || (side.contains('.') && !side.starts_with(&format!("{alias}.")))
    };
    filter
        .split('(')
        .filter_map(|part| part.split(')').next())
        .any(|comparison| {
            comparison
                .split_once(" = ")
                .is_some_and(|(a, b)| (own_column(a) && key(b)) || (own_column(b) && key(a)))
        })
}

#[test]
fn equalities_with_keys_in_filters_are_found() {
    assert!(filters_on_a_key("(wanted.id = id)", "e"));
    assert!(filters_on_a_key("((id = $2) AND enabled)", "endpoints"));
    assert!(!filters_on_a_key("enabled", "endpoints"));
    assert!(!filters_on_a_key(
        "((($9)[$15] <> 'subject'::text) OR (subject IS NULL))",
        "q"
    ));
    assert!(!filters_on_a_key(
        "(NOT (tenant_id IS DISTINCT FROM $1))",
        "endpoints"
    ));
    assert!(!filters_on_a_key("(state = 'in_flight'::text)", "q"));
}
