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
    /// Security
    pub security: &'static str,
    /// Change password
    pub change_password: &'static str,
    /// Current password
    pub current_password: &'static str,
    /// New password
    pub new_password: &'static str,
    /// Password changed; your other sessions were signed out.
    pub password_changed: &'static str,
    /// Two-factor authentication
    pub two_factor: &'static str,
    /// Two-factor authentication is on.
    pub two_factor_on: &'static str,
    /// Two-factor authentication is off.
    pub two_factor_off: &'static str,
    /// Turn on
    pub enable_totp: &'static str,
    /// Turn off
    pub disable_totp: &'static str,
    /// Scan this code with your authenticator app, or enter the secret, then type the code it shows.
    pub scan_qr: &'static str,
    /// Secret
    pub secret: &'static str,
    /// Code
    pub code: &'static str,
    /// Confirm
    pub confirm: &'static str,
    /// Recovery codes: each works once. Keep them somewhere safe; they are shown only now.
    pub recovery_codes: &'static str,
    /// Audit log
    pub audit: &'static str,
    /// Actor
    pub actor: &'static str,
    /// Action
    pub action: &'static str,
    /// Target
    pub target: &'static str,
    /// Time
    pub time: &'static str,
    /// Filter
    pub filter: &'static str,
    /// Schedules
    pub schedules: &'static str,
    /// Last run
    pub last_run: &'static str,
    /// Next run
    pub next_run: &'static str,
    /// Run now
    pub run_now: &'static str,
    /// Queued.
    pub queued_now: &'static str,
    /// Mail
    pub mail: &'static str,
    /// Recipient
    pub recipient: &'static str,
    /// Subject
    pub subject: &'static str,
    /// Preview
    pub preview: &'static str,
    /// Notifications
    pub notifications: &'static str,
    /// Mark read
    pub mark_read: &'static str,
    /// Mark all read
    pub mark_all_read: &'static str,
    /// unread
    pub unread: &'static str,
    /// API keys
    pub api_keys: &'static str,
    /// Key name
    pub key_name: &'static str,
    /// Permissions
    pub permissions: &'static str,
    /// Create
    pub create: &'static str,
    /// Copy this key now: it is shown only once.
    pub key_once: &'static str,
    /// Connected apps
    pub connected_apps: &'static str,
    /// Scopes
    pub scopes: &'static str,
    /// Your account holds no permissions to delegate; a key can still identify you.
    pub no_permissions: &'static str,
    /// Create a user
    pub create_user: &'static str,
    /// Roles
    pub roles: &'static str,
    /// Role
    pub role: &'static str,
    /// Scope (resource id, empty for global)
    pub scope: &'static str,
    /// Grant
    pub grant: &'static str,
    /// Remove
    pub remove: &'static str,
    /// global
    pub global: &'static str,
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
    security: "Security",
    change_password: "Change password",
    current_password: "Current password",
    new_password: "New password",
    password_changed: "Password changed; your other sessions were signed out.",
    two_factor: "Two-factor authentication",
    two_factor_on: "Two-factor authentication is on.",
    two_factor_off: "Two-factor authentication is off.",
    enable_totp: "Turn on",
    disable_totp: "Turn off",
    scan_qr: "Scan this code with your authenticator app, or enter the secret, then type the code it shows.",
    secret: "Secret",
    code: "Code",
    confirm: "Confirm",
    recovery_codes: "Recovery codes: each works once. Keep them somewhere safe; they are shown only now.",
    audit: "Audit log",
    actor: "Actor",
    action: "Action",
    target: "Target",
    time: "Time",
    filter: "Filter",
    schedules: "Schedules",
    last_run: "Last run",
    next_run: "Next run",
    run_now: "Run now",
    queued_now: "Queued.",
    mail: "Mail",
    recipient: "Recipient",
    subject: "Subject",
    preview: "Preview",
    notifications: "Notifications",
    mark_read: "Mark read",
    mark_all_read: "Mark all read",
    unread: "unread",
    api_keys: "API keys",
    key_name: "Key name",
    permissions: "Permissions",
    create: "Create",
    key_once: "Copy this key now: it is shown only once.",
    connected_apps: "Connected apps",
    scopes: "Scopes",
    no_permissions: "Your account holds no permissions to delegate; a key can still identify you.",
    create_user: "Create a user",
    roles: "Roles",
    role: "Role",
    scope: "Scope (resource id, empty for global)",
    grant: "Grant",
    remove: "Remove",
    global: "global",
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
    security: "Bảo mật",
    change_password: "Đổi mật khẩu",
    current_password: "Mật khẩu hiện tại",
    new_password: "Mật khẩu mới",
    password_changed: "Đã đổi mật khẩu; các phiên khác đã bị đăng xuất.",
    two_factor: "Xác thực hai lớp",
    two_factor_on: "Xác thực hai lớp đang bật.",
    two_factor_off: "Xác thực hai lớp đang tắt.",
    enable_totp: "Bật",
    disable_totp: "Tắt",
    scan_qr: "Quét mã này bằng ứng dụng xác thực, hoặc nhập khoá bí mật, rồi nhập mã ứng dụng hiển thị.",
    secret: "Khoá bí mật",
    code: "Mã",
    confirm: "Xác nhận",
    recovery_codes: "Mã khôi phục: mỗi mã dùng được một lần. Hãy cất giữ cẩn thận; chúng chỉ hiện lần này.",
    audit: "Nhật ký kiểm toán",
    actor: "Người thực hiện",
    action: "Hành động",
    target: "Đối tượng",
    time: "Thời gian",
    filter: "Lọc",
    schedules: "Lịch chạy",
    last_run: "Lần chạy trước",
    next_run: "Lần chạy tới",
    run_now: "Chạy ngay",
    queued_now: "Đã đưa vào hàng đợi.",
    mail: "Thư",
    recipient: "Người nhận",
    subject: "Tiêu đề",
    preview: "Xem trước",
    notifications: "Thông báo",
    mark_read: "Đánh dấu đã đọc",
    mark_all_read: "Đánh dấu tất cả đã đọc",
    unread: "chưa đọc",
    api_keys: "Khoá API",
    key_name: "Tên khoá",
    permissions: "Quyền",
    create: "Tạo",
    key_once: "Hãy sao chép khoá này ngay: nó chỉ hiện một lần.",
    connected_apps: "Ứng dụng đã kết nối",
    scopes: "Phạm vi",
    no_permissions: "Tài khoản của bạn không có quyền nào để uỷ quyền; khoá vẫn xác định được bạn.",
    create_user: "Tạo người dùng",
    roles: "Vai trò",
    role: "Vai trò",
    scope: "Phạm vi (mã tài nguyên, để trống nếu toàn cục)",
    grant: "Cấp",
    remove: "Gỡ",
    global: "toàn cục",
};
