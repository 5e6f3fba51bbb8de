//! Writing HTML safely: one escaping function for every value, and the page layout with the
//! security headers every console answer carries.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The text with the five characters that matter in HTML text and quoted attribute values
/// replaced by character references, so a value can never close an element or an attribute.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A path segment: percent-encodes everything but unreserved characters (RFC 3986 §2.3), so an
/// id with `/`, `?` or `#` stays one segment.
pub fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Where a signed-in page links to: the tenant's sections and sign-out.
#[derive(Debug)]
pub struct Chrome<'a> {
    pub tenant_id: &'a str,
    pub csrf: &'a str,
    /// The admin may pick another tenant.
    pub is_admin: bool,
    /// Which navigation entry is the current page.
    pub section: &'a str,
}

/// The Content-Security-Policy of every console answer: nothing but the console's own files,
/// no inline script or style, no framing, forms post only to the console.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Adds the headers every console answer carries.
pub fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show a tenant's data: no shared or back-button cache keeps them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// A whole HTML document with `body` (already escaped HTML) as its main content.
pub fn document(
    status: StatusCode,
    title: &str,
    chrome: Option<&Chrome<'_>>,
    body: &str,
) -> Response {
    let navigation = chrome.map(navigation).unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Herald console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>{navigation}\
         <main id=\"main\"><h1>{title}</h1>{body}</main></body></html>",
        title = escape(title),
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    secure_headers(&mut response);
    response
}

/// An HTML fragment (a page's list, for the script that refreshes it in place).
pub fn fragment(html: String) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    secure_headers(&mut response);
    response
}

fn navigation(chrome: &Chrome<'_>) -> String {
    let tenant = segment(chrome.tenant_id);
    let entries = [
        ("overview", "Overview", format!("/console/t/{tenant}")),
        ("events", "Events", format!("/console/t/{tenant}/events")),
        ("publish", "Publish", format!("/console/t/{tenant}/publish")),
        (
            "endpoints",
            "Endpoints",
            format!("/console/t/{tenant}/endpoints"),
        ),
        (
            "hooks",
            "Blocking hooks",
            format!("/console/t/{tenant}/hooks"),
        ),
        ("sources", "Sources", format!("/console/t/{tenant}/sources")),
        ("catalog", "Catalog", format!("/console/t/{tenant}/catalog")),
    ];
    let mut links = String::new();
    for (section, label, href) in entries {
        let current = if section == chrome.section {
            " aria-current=\"page\""
        } else {
            ""
        };
        links.push_str(&format!("<li><a href=\"{href}\"{current}>{label}</a></li>"));
    }
    // Keys and tenants are an admin's to manage (the API's rule): others get no link to them.
    let switch = if chrome.is_admin {
        let current = if chrome.section == "keys" {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!(
            "<li><a href=\"/console/t/{tenant}/keys\"{current}>API keys</a></li>\
             <li><a href=\"/console/tenants\">Tenants</a></li>"
        )
    } else {
        String::new()
    };
    format!(
        "<header><nav aria-label=\"Console\"><span class=\"brand\">Herald</span>\
         <span class=\"tenant\">tenant <strong>{tenant_name}</strong></span><ul>{links}{switch}</ul>\
         <form method=\"post\" action=\"/console/sign-out\">{csrf}\
         <button type=\"submit\">Sign out</button></form></nav></header>",
        tenant_name = escape(chrome.tenant_id),
        csrf = csrf_field(chrome.csrf),
    )
}

/// The hidden field every state-changing form carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

/// A form with one button that posts to `action`.
pub fn button_form(action: &str, csrf: &str, label: &str, extra_fields: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{action}\">{csrf}{extra_fields}\
         <button type=\"submit\">{label}</button></form>",
        action = escape(action),
        csrf = csrf_field(csrf),
        label = escape(label),
    )
}

/// The confirmation step of something that cannot be undone: what will happen, a button that
/// posts to `action` (with the CSRF token), and a way back that changes nothing.
pub fn confirm_page(
    chrome: &Chrome<'_>,
    title: &str,
    consequence: &str,
    action: &str,
    button_label: &str,
    cancel_href: &str,
) -> Response {
    document(
        StatusCode::OK,
        title,
        Some(chrome),
        &format!(
            "<p>{consequence}</p><p>{button} <a href=\"{cancel}\">Cancel</a></p>",
            consequence = escape(consequence),
            button = button_form(action, chrome.csrf, button_label, ""),
            cancel = escape(cancel_href),
        ),
    )
}

/// A redirect after a form (RFC 9110 §15.4.4: 303 makes the browser GET the new page).
pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

/// JSON, pretty-printed and escaped, in a `<pre>`.
pub fn json_block(value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    format!("<pre class=\"json\">{}</pre>", escape(&text))
}

/// An optional value, or a dash.
pub fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "—".to_owned(), escape)
}

#[cfg(test)]
mod tests {
    use super::{escape, segment};

    fn check(input: &str, expected: &str) {
        assert_eq!(escape(input), expected, "escaping {input:?}");
    }

    #[test]
    fn escapes_every_character_that_can_end_text_or_an_attribute() {
        check("plain", "plain");
        check("<script>", "&lt;script&gt;");
        check("\"onload='x'", "&quot;onload=&#x27;x&#x27;");
        check("a&amp;b", "a&amp;amp;b");
        check("é ✓", "é ✓");
    }

    #[test]
    fn a_segment_cannot_leave_its_place_in_the_path() {
        assert_eq!(segment("evt_1"), "evt_1");
        assert_eq!(segment("../a?b#c"), "..%2Fa%3Fb%23c");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
