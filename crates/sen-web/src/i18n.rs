//! The pages' words in English and Vietnamese. The language comes from the
//! `sen_lang` cookie (set by the switcher, remembered for a year), else
//! from `Accept-Language`, else English.

use http::HeaderMap;

/// A supported language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Tiếng Việt.
    Vi,
}

/// The cookie that remembers the choice.
pub const COOKIE: &str = "sen_lang";

impl Lang {
    /// The language of a request.
    pub fn of(headers: &HeaderMap) -> Self {
        if let Some(v) = sen_auth::cookies::read_headers(headers, COOKIE) {
            return Self::parse(v);
        }
        let accept = headers
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Self::parse(sen_core::mail::locale_from_accept_language(accept))
    }

    /// `vi` → Vietnamese; anything else English.
    pub fn parse(s: &str) -> Self {
        if s == "vi" { Self::Vi } else { Self::En }
    }

    /// `en` or `vi`.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Vi => "vi",
        }
    }

    /// The words.
    pub fn tx(self) -> &'static Texts {
        match self {
            Self::En => &EN,
            Self::Vi => &VI,
        }
    }
}

/// Every fixed string the pages show.
#[derive(Debug)]
pub struct Texts {
    /// Product name line.
    pub brand: &'static str,
    /// "Sign in".
    pub sign_in: &'static str,
    /// "Sign out".
    pub sign_out: &'static str,
    /// "Email".
    pub email: &'static str,
    /// "Password".
    pub password: &'static str,
    /// "Authenticator code".
    pub totp: &'static str,
    /// Shown when the account needs a code.
    pub totp_needed: &'static str,
    /// Wrong credentials.
    pub bad_credentials: &'static str,
    /// Too many attempts.
    pub rate_limited: &'static str,
    /// Dashboard title.
    pub dashboard: &'static str,
    /// Apps heading.
    pub apps: &'static str,
    /// "Users".
    pub users: &'static str,
    /// "Jobs".
    pub jobs: &'static str,
    /// Health strip: version.
    pub version: &'static str,
    /// Health strip: database.
    pub database: &'static str,
    /// Health strip: Redis.
    pub redis: &'static str,
    /// Health strip: queued jobs.
    pub queued: &'static str,
    /// Health strip: dead jobs.
    pub dead: &'static str,
    /// "ok".
    pub ok: &'static str,
    /// "down".
    pub down: &'static str,
    /// "not used".
    pub not_used: &'static str,
    /// Search button.
    pub search: &'static str,
    /// "Name".
    pub name: &'static str,
    /// "Status".
    pub status: &'static str,
    /// "active".
    pub active: &'static str,
    /// "disabled".
    pub disabled: &'static str,
    /// "Disable".
    pub disable: &'static str,
    /// "Enable".
    pub enable: &'static str,
    /// "Retry".
    pub retry: &'static str,
    /// "Kind".
    pub kind: &'static str,
    /// "Queue".
    pub queue: &'static str,
    /// "State".
    pub state: &'static str,
    /// "Attempts".
    pub attempts: &'static str,
    /// "Last error".
    pub last_error: &'static str,
    /// Empty list.
    pub nothing: &'static str,
    /// 403 title.
    pub forbidden: &'static str,
    /// 403 text.
    pub forbidden_text: &'static str,
    /// Profile page title.
    pub profile: &'static str,
    /// "Mood".
    pub mood: &'static str,
    /// "Save".
    pub save: &'static str,
    /// "Saved."
    pub saved: &'static str,
    /// "Avatar".
    pub avatar: &'static str,
    /// "Upload".
    pub upload: &'static str,
    /// "Sessions".
    pub sessions: &'static str,
    /// "This device".
    pub this_device: &'static str,
    /// "Sign out".
    pub revoke: &'static str,
    /// "Last seen".
    pub last_seen: &'static str,
    /// "Language".
    pub language: &'static str,
    /// "Next page".
    pub next_page: &'static str,
    /// "Dead-letter queue".
    pub dead_letters: &'static str,
}

/// English.
pub static EN: Texts = Texts {
    brand: "Sen",
    sign_in: "Sign in",
    sign_out: "Sign out",
    email: "Email",
    password: "Password",
    totp: "Authenticator code",
    totp_needed: "Enter the code from your authenticator app.",
    bad_credentials: "The email or password is wrong.",
    rate_limited: "Too many attempts. Wait a moment and try again.",
    dashboard: "Dashboard",
    apps: "Apps",
    users: "Users",
    jobs: "Jobs",
    version: "Version",
    database: "Database",
    redis: "Redis",
    queued: "Queued jobs",
    dead: "Dead jobs",
    ok: "ok",
    down: "down",
    not_used: "not used",
    search: "Search",
    name: "Name",
    status: "Status",
    active: "active",
    disabled: "disabled",
    disable: "Disable",
    enable: "Enable",
    retry: "Retry",
    kind: "Kind",
    queue: "Queue",
    state: "State",
    attempts: "Attempts",
    last_error: "Last error",
    nothing: "Nothing here.",
    forbidden: "Not allowed",
    forbidden_text: "Your account cannot open this page.",
    profile: "Your profile",
    mood: "Mood",
    save: "Save",
    saved: "Saved.",
    avatar: "Avatar",
    upload: "Upload",
    sessions: "Sessions",
    this_device: "this device",
    revoke: "Sign out",
    last_seen: "Last seen",
    language: "Language",
    next_page: "Next page",
    dead_letters: "Dead-letter queue",
};

/// Tiếng Việt.
pub static VI: Texts = Texts {
    brand: "Sen",
    sign_in: "Đăng nhập",
    sign_out: "Đăng xuất",
    email: "Email",
    password: "Mật khẩu",
    totp: "Mã xác thực",
    totp_needed: "Nhập mã từ ứng dụng xác thực của bạn.",
    bad_credentials: "Email hoặc mật khẩu không đúng.",
    rate_limited: "Bạn đã thử quá nhiều lần. Hãy đợi một lát rồi thử lại.",
    dashboard: "Bảng điều khiển",
    apps: "Ứng dụng",
    users: "Người dùng",
    jobs: "Tác vụ",
    version: "Phiên bản",
    database: "Cơ sở dữ liệu",
    redis: "Redis",
    queued: "Tác vụ đang chờ",
    dead: "Tác vụ thất bại",
    ok: "ổn",
    down: "lỗi",
    not_used: "không dùng",
    search: "Tìm",
    name: "Tên",
    status: "Trạng thái",
    active: "đang hoạt động",
    disabled: "đã khoá",
    disable: "Khoá",
    enable: "Mở khoá",
    retry: "Chạy lại",
    kind: "Loại",
    queue: "Hàng đợi",
    state: "Trạng thái",
    attempts: "Số lần thử",
    last_error: "Lỗi gần nhất",
    nothing: "Chưa có gì.",
    forbidden: "Không được phép",
    forbidden_text: "Tài khoản của bạn không mở được trang này.",
    profile: "Hồ sơ của bạn",
    mood: "Tâm trạng",
    save: "Lưu",
    saved: "Đã lưu.",
    avatar: "Ảnh đại diện",
    upload: "Tải lên",
    sessions: "Phiên đăng nhập",
    this_device: "thiết bị này",
    revoke: "Đăng xuất",
    last_seen: "Lần cuối",
    language: "Ngôn ngữ",
    next_page: "Trang sau",
    dead_letters: "Hàng đợi tác vụ hỏng",
};
