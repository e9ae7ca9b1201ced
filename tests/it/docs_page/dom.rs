//! Reading the DOM Chromium serialises: start tags and their attributes,
//! where an element ends, its text.

use std::collections::HashMap;

pub struct Tag {
    pub name: String,
    pub attrs: HashMap<String, String>,
    /// Where the tag starts in the DOM.
    pub at: usize,
}

impl Tag {
    pub fn attr(&self, name: &str) -> String {
        self.attrs.get(name).cloned().unwrap_or_default()
    }

    pub fn has_class(&self, class: &str) -> bool {
        self.attr("class").split_whitespace().any(|c| c == class)
    }
}

pub fn start_tags(html: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let at = html.len() - rest.len() + open;
        rest = &rest[open + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.is_empty() {
            continue;
        }
        rest = &rest[name.len()..];
        let mut attrs = HashMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() || rest.starts_with('>') || rest.starts_with("/>") {
                break;
            }
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '=' || c == '>')
                .unwrap_or(rest.len());
            let key = rest[..end].to_owned();
            rest = &rest[end..];
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix("=\"") {
                let close = quoted.find('"').unwrap_or(quoted.len());
                value = decode(&quoted[..close]);
                rest = quoted.get(close + 1..).unwrap_or_default();
            }
            attrs.insert(key, value);
        }
        tags.push(Tag {
            name: name.to_ascii_lowercase(),
            attrs,
            at,
        });
    }
    tags
}

fn decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Elements `<name class="… class …">`.
pub fn elements<'a>(tags: &'a [Tag], name: &str, class: &str) -> Vec<&'a Tag> {
    tags.iter()
        .filter(|t| t.name == name && t.has_class(class))
        .collect()
}

/// Where the element starting at `at` ends: its `</name>`, counting nesting.
pub fn section_end(html: &str, at: usize) -> usize {
    let name: String = html[at + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let (mut depth, mut i) = (0usize, at);
    while i < html.len() {
        if html[i..].starts_with(&close) {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        } else if html[i..].starts_with(&open)
            && html[i + open.len()..].starts_with(|c: char| c.is_whitespace() || c == '>')
        {
            depth += 1;
        }
        i += html[i..].chars().next().map_or(1, char::len_utf8);
    }
    html.len()
}

/// The tags inside `element`.
pub fn within<'a>(html: &str, tags: &'a [Tag], element: &Tag) -> Vec<&'a Tag> {
    let end = section_end(html, element.at);
    tags.iter()
        .filter(|t| t.at > element.at && t.at < end)
        .collect()
}

/// The text of the first `<name attr="value">` (a class among others for `class`).
pub fn text_of(html: &str, tags: &[Tag], name: &str, attr: &str, value: &str) -> String {
    let found = tags.iter().find(|t| {
        t.name == name
            && if attr == "class" {
                t.has_class(value)
            } else {
                t.attr(attr) == value
            }
    });
    found.map_or_else(String::new, |t| {
        strip_tags(&html[t.at..section_end(html, t.at)])
    })
}

pub fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    decode(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
