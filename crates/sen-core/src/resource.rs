//! Declared tables: an app describes one of its tables once (fields with
//! types and limits, which to search, filter and sort by, who may read and
//! write) and gets generic pages for it — a list with search, filters,
//! sort and cursor pages, a detail page, and create/edit forms validated
//! on the server — as Django admin gives a model. `sen-web` draws the
//! pages; this module holds the declaration, the validation of submitted
//! values, and the SQL (one statement per action, every value bound, the
//! identifiers checked at registration, the same on SQLite and
//! PostgreSQL).
//!
//! A resource with an `owner` column can also be a `/me` tab: there every
//! statement is limited to the caller's rows and new rows get the caller
//! as owner.

use sea_orm::{ConnectionTrait, DbErr, QueryResult, Value};

use crate::db::Db;
use crate::error::FieldError;

/// How a field is typed, shown and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// One line of text of at most `max` characters.
    Text {
        /// Longest value.
        max: usize,
    },
    /// Several lines of text of at most `max` characters.
    LongText {
        /// Longest value.
        max: usize,
    },
    /// An email address.
    Email,
    /// A whole number in `min..=max`.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// Yes or no (a checkbox).
    Boolean,
    /// One of fixed values.
    Choice(&'static [&'static str]),
}

/// One column of a resource.
#[derive(Debug, Clone)]
pub struct Field {
    /// Column name.
    pub name: &'static str,
    /// Label on pages.
    pub label: &'static str,
    /// Type.
    pub kind: FieldKind,
    /// Must have a value.
    pub required: bool,
    /// Forms may set it (else shown only).
    pub editable: bool,
    /// Shown as a list column.
    pub list: bool,
    /// Offered as a list filter (booleans and choices).
    pub filter: bool,
    /// The list can be sorted by it (needs `required`: keyset pages need
    /// a value on every row).
    pub sortable: bool,
    /// Matched by the list's search box (text fields).
    pub search: bool,
}

impl Field {
    fn new(name: &'static str, label: &'static str, kind: FieldKind) -> Self {
        Self {
            name,
            label,
            kind,
            required: false,
            editable: true,
            list: true,
            filter: false,
            sortable: false,
            search: false,
        }
    }

    /// A one-line text field.
    pub fn text(name: &'static str, label: &'static str, max: usize) -> Self {
        Self::new(name, label, FieldKind::Text { max })
    }

    /// A multi-line text field (not a list column by default).
    pub fn long_text(name: &'static str, label: &'static str, max: usize) -> Self {
        let mut f = Self::new(name, label, FieldKind::LongText { max });
        f.list = false;
        f
    }

    /// An email field.
    pub fn email(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Email)
    }

    /// A whole-number field.
    pub fn integer(name: &'static str, label: &'static str, min: i64, max: i64) -> Self {
        Self::new(name, label, FieldKind::Integer { min, max })
    }

    /// A yes/no field (never required: unticked is a value).
    pub fn boolean(name: &'static str, label: &'static str) -> Self {
        Self::new(name, label, FieldKind::Boolean)
    }

    /// A field with fixed values.
    pub fn choice(
        name: &'static str,
        label: &'static str,
        values: &'static [&'static str],
    ) -> Self {
        Self::new(name, label, FieldKind::Choice(values))
    }

    /// Must have a value.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Shown but never set by forms.
    pub fn read_only(mut self) -> Self {
        self.editable = false;
        self
    }

    /// Not a list column.
    pub fn hidden_in_list(mut self) -> Self {
        self.list = false;
        self
    }

    /// A list filter.
    pub fn filter(mut self) -> Self {
        self.filter = true;
        self
    }

    /// A sort key of the list.
    pub fn sortable(mut self) -> Self {
        self.sortable = true;
        self
    }

    /// Matched by the search box.
    pub fn search(mut self) -> Self {
        self.search = true;
        self
    }

    /// A typed NULL for this field (PostgreSQL refuses a text NULL in a
    /// number column).
    pub fn null(&self) -> Value {
        match self.kind {
            FieldKind::Integer { .. } => Value::BigInt(None),
            FieldKind::Boolean => Value::Bool(None),
            _ => Value::String(None),
        }
    }

    /// The value of a submitted form for this field (`None` for an
    /// absent optional value), or why it is refused. Boolean: present and
    /// not `false`/`0` means yes.
    pub fn parse(&self, raw: Option<&str>) -> Result<Option<Value>, FieldError> {
        let err = |code: &str, message: String| FieldError::new(self.name, code, message);
        if self.kind == FieldKind::Boolean {
            let on = raw.is_some_and(|v| !matches!(v, "" | "false" | "0" | "off"));
            return Ok(Some(on.into()));
        }
        let v = raw.map(str::trim).unwrap_or_default();
        if v.is_empty() {
            return if self.required {
                Err(err("required", "is required".into()))
            } else {
                Ok(None)
            };
        }
        match &self.kind {
            FieldKind::Text { max } | FieldKind::LongText { max } => {
                let n = v.chars().count();
                if n > *max {
                    return Err(err("too_long", format!("must be at most {max} characters")));
                }
                if matches!(self.kind, FieldKind::Text { .. }) && v.contains(['\n', '\r']) {
                    return Err(err("invalid_value", "must be one line".into()));
                }
                if v.chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
                {
                    return Err(err("invalid_value", "contains control characters".into()));
                }
                Ok(Some(v.to_string().into()))
            }
            FieldKind::Email => {
                if v.len() > 254 || !crate::mail::is_plausible_address(v) {
                    return Err(err("invalid_email", "must be an email address".into()));
                }
                Ok(Some(v.to_string().into()))
            }
            FieldKind::Integer { min, max } => match v.parse::<i64>() {
                Ok(n) if (*min..=*max).contains(&n) => Ok(Some(n.into())),
                Ok(_) => Err(err(
                    "out_of_range",
                    format!("must be between {min} and {max}"),
                )),
                Err(_) => Err(err("invalid_number", "must be a whole number".into())),
            },
            FieldKind::Choice(values) => {
                if values.contains(&v) {
                    Ok(Some(v.to_string().into()))
                } else {
                    Err(err(
                        "invalid_value",
                        format!("must be one of {}", values.join(", ")),
                    ))
                }
            }
            FieldKind::Boolean => Ok(None),
        }
    }
}

/// How rows are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Text ids this module generates (UUIDv7).
    Uuid,
    /// Integer ids the database assigns.
    Auto,
}

/// A table exposed as generic pages.
#[derive(Debug, Clone)]
pub struct Resource {
    /// URL segment, unique within the app (`products`).
    pub name: &'static str,
    /// Title on pages.
    pub title: &'static str,
    /// The table.
    pub table: &'static str,
    /// The id column.
    pub id_column: &'static str,
    /// How ids are made.
    pub id_kind: IdKind,
    /// The columns shown and edited.
    pub fields: Vec<Field>,
    /// Permission to see rows.
    pub read_permission: &'static str,
    /// Permission to create, edit and delete rows.
    pub write_permission: &'static str,
    /// Column holding the owning user's id (enables the `/me` tab).
    pub owner_column: Option<&'static str>,
}

/// A cell read back from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// No value.
    Null,
    /// Text.
    Text(String),
    /// Number.
    Int(i64),
    /// Yes/no.
    Bool(bool),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Null => Ok(()),
            Self::Text(s) => f.write_str(s),
            Self::Int(n) => write!(f, "{n}"),
            Self::Bool(b) => f.write_str(if *b { "✓" } else { "✗" }),
        }
    }
}

impl Cell {
    /// The value as a form shows it (`true`/`false` for booleans).
    pub fn form_value(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            other => other.to_string(),
        }
    }
}

/// A row: its id and one cell per field, in field order.
#[derive(Debug, Clone)]
pub struct Row {
    /// The id, as text.
    pub id: String,
    /// Cells in field order.
    pub cells: Vec<Cell>,
}

/// What a list shows.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Search text ("" = none).
    pub q: String,
    /// `(field, value)` filters on filter fields.
    pub filters: Vec<(String, String)>,
    /// Sort field ("" = id).
    pub sort: String,
    /// Descending.
    pub desc: bool,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// A page of rows.
#[derive(Debug, Clone)]
pub struct Page {
    /// Rows.
    pub rows: Vec<Row>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some('a'..='z' | '_'))
        && s.len() <= 63
        && c.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// The error of a submitted form: one entry per refused field.
pub type FormErrors = Vec<FieldError>;

impl Resource {
    /// A resource with UUIDv7 text ids in column `id`.
    pub fn new(name: &'static str, title: &'static str, table: &'static str) -> Self {
        Self {
            name,
            title,
            table,
            id_column: "id",
            id_kind: IdKind::Uuid,
            fields: Vec::new(),
            read_permission: "",
            write_permission: "",
            owner_column: None,
        }
    }

    /// Integer ids assigned by the database.
    pub fn auto_id(mut self) -> Self {
        self.id_kind = IdKind::Auto;
        self
    }

    /// Adds a field.
    pub fn field(mut self, f: Field) -> Self {
        self.fields.push(f);
        self
    }

    /// The permissions to read and to write (`inventory:read`).
    pub fn permissions(mut self, read: &'static str, write: &'static str) -> Self {
        self.read_permission = read;
        self.write_permission = write;
        self
    }

    /// The column holding the owner's user id.
    pub fn owned_by(mut self, column: &'static str) -> Self {
        self.owner_column = Some(column);
        self
    }

    /// Checks the declaration: identifiers, unique fields, sortable ⇒
    /// required, search on text only, permissions present.
    pub fn check(&self) -> Result<(), String> {
        let me = format!("resource `{}`", self.name);
        if !is_identifier(self.name) || !is_identifier(self.table) || !is_identifier(self.id_column)
        {
            return Err(format!(
                "{me}: name, table and id column must be lower-case identifiers"
            ));
        }
        if self.read_permission.is_empty() || self.write_permission.is_empty() {
            return Err(format!("{me}: declare its read and write permissions"));
        }
        if self.fields.is_empty() {
            return Err(format!("{me}: declare at least one field"));
        }
        for (i, f) in self.fields.iter().enumerate() {
            if !is_identifier(f.name) || f.name == self.id_column {
                return Err(format!(
                    "{me}: field `{}` must be an identifier other than the id",
                    f.name
                ));
            }
            if self.fields[..i].iter().any(|o| o.name == f.name)
                || Some(f.name) == self.owner_column
            {
                return Err(format!("{me}: field `{}` is declared twice", f.name));
            }
            if f.sortable && !f.required && f.kind != FieldKind::Boolean {
                return Err(format!(
                    "{me}: sortable field `{}` must be required",
                    f.name
                ));
            }
            let text = matches!(
                f.kind,
                FieldKind::Text { .. } | FieldKind::LongText { .. } | FieldKind::Email
            );
            if f.search && !text {
                return Err(format!(
                    "{me}: only text fields can be searched (`{}`)",
                    f.name
                ));
            }
        }
        if let Some(o) = self.owner_column
            && !is_identifier(o)
        {
            return Err(format!("{me}: owner column must be an identifier"));
        }
        Ok(())
    }

    /// The field named `name`.
    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The editable fields' values of a submitted form, or every refusal.
    pub fn parse_form(
        &self,
        form: &[(String, String)],
    ) -> Result<Vec<(&'static str, Value)>, FormErrors> {
        let mut values = Vec::new();
        let mut errors = Vec::new();
        for f in self.fields.iter().filter(|f| f.editable) {
            let raw = form
                .iter()
                .find(|(k, _)| k == f.name)
                .map(|(_, v)| v.as_str());
            match f.parse(raw) {
                Ok(Some(v)) => values.push((f.name, v)),
                Ok(None) => values.push((f.name, f.null())),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }

    fn columns(&self) -> String {
        let mut cols = vec![self.id_column];
        cols.extend(self.fields.iter().map(|f| f.name));
        cols.join(", ")
    }

    fn id_value(&self, id: &str) -> Option<Value> {
        match self.id_kind {
            IdKind::Uuid => (id.len() <= 64).then(|| id.to_string().into()),
            IdKind::Auto => id.parse::<i64>().ok().map(Into::into),
        }
    }

    fn read_cell(r: &QueryResult, col: &str, kind: Option<&FieldKind>) -> Result<Cell, DbErr> {
        Ok(match kind {
            Some(FieldKind::Integer { .. }) => r
                .try_get::<Option<i64>>("", col)?
                .map_or(Cell::Null, Cell::Int),
            Some(FieldKind::Boolean) => r
                .try_get::<Option<bool>>("", col)?
                .map_or(Cell::Null, Cell::Bool),
            _ => r
                .try_get::<Option<String>>("", col)?
                .map_or(Cell::Null, Cell::Text),
        })
    }

    fn read_row(&self, r: &QueryResult) -> Result<Row, DbErr> {
        let id = match self.id_kind {
            IdKind::Uuid => r.try_get::<String>("", self.id_column)?,
            IdKind::Auto => r.try_get::<i64>("", self.id_column)?.to_string(),
        };
        let cells = self
            .fields
            .iter()
            .map(|f| Self::read_cell(r, f.name, Some(&f.kind)))
            .collect::<Result<_, _>>()?;
        Ok(Row { id, cells })
    }

    fn owner_clause(&self, owner: Option<&str>, sql: &mut String, values: &mut Vec<Value>) {
        if let (Some(col), Some(o)) = (self.owner_column, owner) {
            sql.push_str(&format!(" AND {col} = ?"));
            values.push(o.to_string().into());
        }
    }

    /// A page of rows (only `owner`'s when given).
    pub async fn list(&self, db: &Db, owner: Option<&str>, q: &ListQuery) -> Result<Page, DbErr> {
        let mut sql = format!("SELECT {} FROM {} WHERE 1 = 1", self.columns(), self.table);
        let mut values: Vec<Value> = Vec::new();
        self.owner_clause(owner, &mut sql, &mut values);
        let search: Vec<&Field> = self.fields.iter().filter(|f| f.search).collect();
        let needle = q.q.trim();
        if !needle.is_empty() && !search.is_empty() {
            let pattern = format!(
                "%{}%",
                needle
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let ors: Vec<String> = search
                .iter()
                .map(|f| format!("LOWER({}) LIKE ? ESCAPE '\\'", f.name))
                .collect();
            sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
            values.extend(search.iter().map(|_| Value::from(pattern.clone())));
        }
        for (name, raw) in &q.filters {
            let Some(f) = self.field_named(name).filter(|f| f.filter) else {
                continue;
            };
            if raw.is_empty() {
                continue;
            }
            if let Ok(Some(v)) = f.parse(Some(raw)) {
                sql.push_str(&format!(" AND {} = ?", f.name));
                values.push(v);
            }
        }
        let sort = self
            .field_named(&q.sort)
            .filter(|f| f.sortable)
            .map(|f| (f.name, &f.kind));
        let (cmp, dir) = if q.desc { ("<", "DESC") } else { (">", "ASC") };
        if let Some(cursor) = &q.cursor {
            match sort {
                Some((col, kind)) => {
                    if let Some((v, id)) = cursor.rsplit_once('|')
                        && let Some(idv) = self.id_value(id)
                    {
                        let sv: Value = match kind {
                            FieldKind::Integer { .. } => v.parse::<i64>().unwrap_or(0).into(),
                            FieldKind::Boolean => (v == "true").into(),
                            _ => v.to_string().into(),
                        };
                        sql.push_str(&format!(
                            " AND ({col} {cmp} ? OR ({col} = ? AND {} {cmp} ?))",
                            self.id_column
                        ));
                        values.extend([sv.clone(), sv, idv]);
                    }
                }
                None => {
                    if let Some(idv) = self.id_value(cursor) {
                        sql.push_str(&format!(" AND {} {cmp} ?", self.id_column));
                        values.push(idv);
                    }
                }
            }
        }
        match sort {
            Some((col, _)) => {
                sql.push_str(&format!(" ORDER BY {col} {dir}, {} {dir}", self.id_column))
            }
            None => sql.push_str(&format!(" ORDER BY {} {dir}", self.id_column)),
        }
        let limit = q.limit.clamp(1, 200);
        sql.push_str(" LIMIT ?");
        values.push(i64::from(limit + 1).into());
        let found = db.orm().query_all_raw(db.statement(&sql, values)).await?;
        let mut rows = found
            .iter()
            .map(|r| self.read_row(r))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| match sort {
                Some((col, _)) => {
                    let i = self.fields.iter().position(|f| f.name == col).unwrap_or(0);
                    format!("{}|{}", r.cells[i].form_value(), r.id)
                }
                None => r.id.clone(),
            })
        } else {
            None
        };
        Ok(Page { rows, next_cursor })
    }

    /// One row (only if `owner`'s when given).
    pub async fn get(
        &self,
        db: &Db,
        conn: &impl ConnectionTrait,
        owner: Option<&str>,
        id: &str,
    ) -> Result<Option<Row>, DbErr> {
        let Some(idv) = self.id_value(id) else {
            return Ok(None);
        };
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {} = ?",
            self.columns(),
            self.table,
            self.id_column
        );
        let mut values = vec![idv];
        self.owner_clause(owner, &mut sql, &mut values);
        conn.query_one_raw(db.statement(&sql, values))
            .await?
            .map(|r| self.read_row(&r))
            .transpose()
    }

    /// Inserts a row of parsed `values` (owned by `owner` when given) and
    /// returns its id.
    pub async fn create(
        &self,
        db: &Db,
        conn: &impl ConnectionTrait,
        owner: Option<&str>,
        values: Vec<(&'static str, Value)>,
    ) -> Result<String, DbErr> {
        let mut cols: Vec<&str> = Vec::new();
        let mut vals: Vec<Value> = Vec::new();
        if self.id_kind == IdKind::Uuid {
            cols.push(self.id_column);
            vals.push(uuid::Uuid::now_v7().to_string().into());
        }
        if let (Some(col), Some(o)) = (self.owner_column, owner) {
            cols.push(col);
            vals.push(o.to_string().into());
        }
        for (c, v) in values {
            cols.push(c);
            vals.push(v);
        }
        let marks = vec!["?"; cols.len()].join(", ");
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks}) RETURNING {}",
            self.table,
            cols.join(", "),
            self.id_column
        );
        let row = conn
            .query_one_raw(db.statement(&sql, vals))
            .await?
            .ok_or_else(|| DbErr::RecordNotInserted)?;
        Ok(match self.id_kind {
            IdKind::Uuid => row.try_get::<String>("", self.id_column)?,
            IdKind::Auto => row.try_get::<i64>("", self.id_column)?.to_string(),
        })
    }

    /// Updates a row's editable fields; false when there is no such row
    /// (of `owner`, when given).
    pub async fn update(
        &self,
        db: &Db,
        conn: &impl ConnectionTrait,
        owner: Option<&str>,
        id: &str,
        values: Vec<(&'static str, Value)>,
    ) -> Result<bool, DbErr> {
        let Some(idv) = self.id_value(id) else {
            return Ok(false);
        };
        if values.is_empty() {
            return Ok(self.get(db, conn, owner, id).await?.is_some());
        }
        let sets: Vec<String> = values.iter().map(|(c, _)| format!("{c} = ?")).collect();
        let mut vals: Vec<Value> = values.into_iter().map(|(_, v)| v).collect();
        let mut sql = format!(
            "UPDATE {} SET {} WHERE {} = ?",
            self.table,
            sets.join(", "),
            self.id_column
        );
        vals.push(idv);
        self.owner_clause(owner, &mut sql, &mut vals);
        Ok(conn
            .execute_raw(db.statement(&sql, vals))
            .await?
            .rows_affected()
            == 1)
    }

    /// Deletes a row; false when there is no such row (of `owner`).
    pub async fn delete(
        &self,
        db: &Db,
        conn: &impl ConnectionTrait,
        owner: Option<&str>,
        id: &str,
    ) -> Result<bool, DbErr> {
        let Some(idv) = self.id_value(id) else {
            return Ok(false);
        };
        let mut sql = format!("DELETE FROM {} WHERE {} = ?", self.table, self.id_column);
        let mut vals = vec![idv];
        self.owner_clause(owner, &mut sql, &mut vals);
        Ok(conn
            .execute_raw(db.statement(&sql, vals))
            .await?
            .rows_affected()
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widgets() -> Resource {
        Resource::new("widgets", "Widgets", "widgets")
            .permissions("probe:read", "probe:write")
            .field(
                Field::text("name", "Name", 10)
                    .required()
                    .search()
                    .sortable(),
            )
            .field(
                Field::integer("qty", "Quantity", 0, 100)
                    .required()
                    .sortable(),
            )
            .field(Field::boolean("active", "Active").filter())
            .field(Field::choice("colour", "Colour", &["red", "blue"]).filter())
            .field(Field::email("contact", "Contact"))
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_good_form_parses_to_typed_values() {
        let v = widgets()
            .parse_form(&form(&[
                ("name", " Bolt "),
                ("qty", "7"),
                ("active", "on"),
                ("colour", "red"),
            ]))
            .unwrap();
        assert_eq!(v[0], ("name", Value::from("Bolt".to_string())));
        assert_eq!(v[1], ("qty", Value::from(7i64)));
        assert_eq!(v[2], ("active", Value::from(true)));
        assert_eq!(v[3], ("colour", Value::from("red".to_string())));
        assert_eq!(v[4], ("contact", Value::String(None)));
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = widgets()
            .parse_form(&form(&[
                ("name", "a name far too long"),
                ("qty", "101"),
                ("colour", "green"),
                ("contact", "not-an-address"),
            ]))
            .unwrap_err();
        let codes: Vec<(&str, &str)> = e
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                ("name", "too_long"),
                ("qty", "out_of_range"),
                ("colour", "invalid_value"),
                ("contact", "invalid_email")
            ]
        );
        let e = widgets().parse_form(&form(&[("qty", "x")])).unwrap_err();
        assert_eq!(e[0].code, "required");
        assert_eq!(e[1].code, "invalid_number");
    }

    #[test]
    fn declarations_are_checked() {
        assert!(widgets().check().is_ok());
        let bad = widgets().field(Field::text("qty", "Again", 5));
        assert!(bad.check().unwrap_err().contains("twice"));
        let bad = Resource::new("w", "W", "w; DROP TABLE x")
            .permissions("a:r", "a:w")
            .field(Field::text("n", "N", 5));
        assert!(bad.check().unwrap_err().contains("identifiers"));
        let bad = Resource::new("w", "W", "w")
            .permissions("a:r", "a:w")
            .field(Field::text("n", "N", 5).sortable());
        assert!(bad.check().unwrap_err().contains("must be required"));
        let bad = Resource::new("w", "W", "w").field(Field::text("n", "N", 5));
        assert!(bad.check().unwrap_err().contains("permissions"));
    }
}
