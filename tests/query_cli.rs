//! End to end: `techmon reference import` of a DUO file by URL into a running
//! `techmon serve`, and `techmon sql` reading it back, with the roles' tokens.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::Duration;

use common::{free_port, start};

/// Serves what `answer` gives for each request's target (path and query) on a free
/// port, as a download site would.
fn site(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request);
            let target = request.split(' ').nth(1).unwrap_or("/");
            let body = answer(target);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
    });
    port
}

fn techmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_techmon"))
        .args(args)
        .env_remove("TECHMON_TOKEN")
        .output()
        .expect("run techmon")
}

#[tokio::test]
async fn reference_import_by_url_and_sql_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _service = start(dir.path(), port, "embedded", "techmon.events", &[]);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv";
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reference/tests/data/duo")
            .join(name),
    )
    .expect("fixture");
    let site = site(move |_| fixture.clone());
    let source = format!("http://127.0.0.1:{site}/{name}");
    let import = |token: &str| {
        techmon(&[
            "reference",
            "import",
            &source,
            "--url",
            &url,
            "--token",
            token,
        ])
    };

    let first = import("dev-token-admin");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("imported")
            && stdout.contains("duo_vo_pupils")
            && stdout.contains("2024/25"),
        "{stdout}"
    );
    assert!(!stdout.contains("already"), "{stdout}");
    let again = import("dev-token-admin");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already imported"));

    let researcher = techmon(&[
        "sql",
        "--url",
        &url,
        "--token",
        "dev-token-researcher",
        "SELECT count(DISTINCT brin6) AS schools, min(source) AS source FROM duo_vo_pupils",
    ]);
    let table = String::from_utf8_lossy(&researcher.stdout);
    assert!(
        researcher.status.success(),
        "{}",
        String::from_utf8_lossy(&researcher.stderr)
    );
    // The fixture has five schools; the URL is the recorded source.
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("5 ") && l.ends_with(source.as_str())),
        "{table}"
    );
    assert!(table.contains("(1 rows)"), "{table}");
    // Version 0 is the table's creation (its columns), 1 the first import.
    assert!(String::from_utf8_lossy(&researcher.stderr).contains("duo_vo_pupils=1"));

    let researcher_import = import("dev-token-researcher");
    assert!(!researcher_import.status.success());
    assert!(String::from_utf8_lossy(&researcher_import.stderr).contains("forbidden"));
    // A hub's token asks of its own rows (DUO's are everyone's), and imports nothing.
    let hub = techmon(&[
        "sql",
        "--url",
        &url,
        "--token",
        "dev-token-tec-deventer",
        "SELECT count(DISTINCT brin6) AS schools FROM duo_vo_pupils",
    ]);
    assert!(
        hub.status.success(),
        "{}",
        String::from_utf8_lossy(&hub.stderr)
    );
    assert!(
        String::from_utf8_lossy(&hub.stdout)
            .lines()
            .any(|l| l.trim() == "5")
    );
    let hub_import = import("dev-token-tec-deventer");
    assert!(String::from_utf8_lossy(&hub_import.stderr).contains("forbidden"));
    let stranger = techmon(&["sql", "--url", &url, "--token", "nobody", "SELECT 1"]);
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("unauthorized"));
}

/// DUO's newer portal (CKAN) by a dataset's page and by a resource's datastore URL:
/// `techmon reference import` finds the dataset's datastore resource, follows the
/// `datastore_search` pages (a page of records at a time) and stores every record once.
#[tokio::test]
async fn reference_import_of_a_ckan_datastore_page_by_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _service = start(dir.path(), port, "embedded", "techmon.events", &[]);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reference/tests/data/duo/ckan-datastore-search-vo-2024.json"),
    )
    .expect("fixture");
    let mut template: serde_json::Value = serde_json::from_slice(&fixture).expect("JSON");
    let records = template["result"]["records"].take();
    let records = records.as_array().expect("records").clone();
    let lines = records.len();
    assert!(lines > 80, "{lines} records: too few for three pages");
    let resource = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024";
    let site = site(move |target| {
        if target.starts_with("/api/3/action/package_show?id=01voins-v1") {
            // The dataset: its datastore resource, and one that is not in the datastore.
            let package = serde_json::json!({"success": true, "result": {"name": "01voins-v1", "resources": [
                {"id": "00000000-0000-4000-8000-000000002024", "name": resource, "format": "CSV",
                 "datastore_active": true, "url": "/not-fetched.csv"},
                {"id": "readme", "name": "Toelichting", "format": "PDF", "datastore_active": false,
                 "url": "/toelichting.pdf"}]}});
            return package.to_string().into_bytes();
        }
        let offset: usize = target
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("offset="))
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        let mut page = template.clone();
        page["result"]["records"] = records.iter().skip(offset).take(40).cloned().collect();
        page["result"]["_links"]["next"] = format!(
            "/api/3/action/datastore_search?resource_id=x&limit=40&offset={}",
            offset + 40
        )
        .into();
        serde_json::to_vec(&page).expect("JSON")
    });
    let cells = || async {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{url}/v1/sql"))
            .bearer_auth("dev-token-researcher")
            .body(
                "SELECT count(*) AS cells, count(DISTINCT brin6) AS schools, \
                 count(DISTINCT source) AS sources, min(school_year) AS year FROM duo_vo_pupils",
            )
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("JSON");
        answer["rows"][0].clone()
    };
    // By the dataset's page: its datastore resource, the school year from its name.
    let dataset = format!("http://127.0.0.1:{site}/dataset/01voins-v1");
    let import = techmon(&[
        "reference",
        "import",
        &dataset,
        "--url",
        &url,
        "--token",
        "dev-token-admin",
    ]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert!(
        import.status.success() && stdout.contains("CKAN JSON") && stdout.contains(resource),
        "{stdout}{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // Six leerjaren of two genders per record, each once.
    let first = cells().await;
    assert_eq!(first["cells"].as_u64(), Some(lines as u64 * 12), "{first}");
    assert_eq!(
        (first["schools"].as_u64(), first["year"].as_str()),
        (Some(5), Some("2024/25")),
        "{first}"
    );

    // By the resource's datastore URL, with the school year given: another source.
    let source =
        format!("http://127.0.0.1:{site}/api/3/action/datastore_search?resource_id=x&limit=40");
    let import = techmon(&[
        "reference",
        "import",
        &source,
        "--school-year",
        "2024/25",
        "--url",
        &url,
        "--token",
        "dev-token-admin",
    ]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert!(
        import.status.success() && stdout.contains("CKAN JSON") && stdout.contains("2024/25"),
        "{stdout}{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let both = cells().await;
    assert_eq!(
        both["cells"].as_u64(),
        Some(2 * lines as u64 * 12),
        "{both}"
    );
    assert_eq!(both["sources"].as_u64(), Some(2), "{both}");
}

/// `techmon token new` prints a token and the configuration lines whose hash is the
/// token's, with a researcher's microdata grant when asked; not for other roles.
#[test]
fn a_new_token_comes_with_its_configuration_and_grant() {
    let made = techmon(&[
        "token",
        "new",
        "--user",
        "j.jansen",
        "--role",
        "researcher",
        "--microdata-until",
        "2027-06-30",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let text = String::from_utf8_lossy(&made.stdout);
    let token = text
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .expect("the token");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .to_string()
    };
    assert!(text.contains("[[query.users]]"), "{text}");
    assert_eq!(value("name"), "j.jansen");
    assert_eq!(value("role"), "researcher");
    assert_eq!(value("token_sha256"), techmon_service::token_sha256(token));
    assert_eq!(value("microdata_until"), "2027-06-30");
    let analyst = techmon(&[
        "token",
        "new",
        "--user",
        "a",
        "--role",
        "analyst",
        "--microdata-until",
        "2027-06-30",
    ]);
    assert!(!analyst.status.success());
}
