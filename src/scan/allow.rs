//! What the real loaders accept (the allowlists that decide) and how bad the rest is (the
//! denylist that only rates severity), with the Python 2 name mapping the unpickler applies.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::finding::Severity;

/// The defaults of torch's `weights_only` unpickler.
const TORCH_ALLOWLIST: &str = include_str!("torch-weights-only-allowlist.txt");

/// What numpy writes into object arrays and pickled arrays (1.x and 2.x module names).
const NUMPY_ALLOWLIST: &[&str] = &[
    "_codecs.encode",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
];

/// Plain data types a plain `pickle.load` of model data commonly meets.
const PLAIN_ALLOWLIST: &[&str] = &[
    "builtins.frozenset",
    "builtins.slice",
    "builtins.range",
    "builtins.bytes",
    "collections.defaultdict",
    "collections.deque",
    "datetime.date",
    "datetime.datetime",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
];

/// The loader that will read a pickle: its allowlist decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loader {
    /// `torch.load` (zip and legacy checkpoints): torch's `weights_only` allowlist.
    Torch,
    /// `np.load(allow_pickle=True)` of an object array: what numpy writes.
    Numpy,
    /// A raw pickle, whoever loads it: torch's, numpy's and plain data types.
    Pickle,
}

impl Loader {
    pub fn name(self) -> &'static str {
        match self {
            Self::Torch => "torch weights_only",
            Self::Numpy => "numpy",
            Self::Pickle => "model-data",
        }
    }

    /// Whether the loader accepts the global `module.name` (after name mapping).
    pub fn allows(self, full: &str) -> bool {
        let t = torch_set();
        match self {
            Self::Torch => t.contains(full),
            Self::Numpy => NUMPY_ALLOWLIST.contains(&full),
            Self::Pickle => {
                t.contains(full)
                    || NUMPY_ALLOWLIST.contains(&full)
                    || PLAIN_ALLOWLIST.contains(&full)
            }
        }
    }
}

fn torch_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        TORCH_ALLOWLIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Types whose instances the unpickler may fill with SETITEM(S): the loaders allow these only.
pub fn is_mapping_type(full: &str) -> bool {
    matches!(
        full,
        "collections.OrderedDict" | "collections.Counter" | "collections.defaultdict"
    )
}

/// Types whose instances may receive ADDITEMS.
pub fn is_set_type(full: &str) -> bool {
    full == "builtins.set"
}

/// Modules (and their submodules) whose globals run code.
const CRITICAL_MODULES: &[&str] = &[
    "os",
    "posix",
    "nt",
    "posixpath",
    "ntpath",
    "subprocess",
    "sys",
    "runpy",
    "pty",
    "ctypes",
    "_ctypes",
    "importlib",
    "imp",
    "pickle",
    "_pickle",
    "cPickle",
    "pickletools",
    "marshal",
    "code",
    "codeop",
    "commands",
    "popen2",
    "platform",
    "pdb",
    "bdb",
    "cProfile",
    "profile",
    "doctest",
    "timeit",
    "trace",
    "idlelib",
    "_pyrepl",
    "pydoc",
    "webbrowser",
    "pip",
    "pkgutil",
    "setuptools",
    "distutils",
    "multiprocessing",
    "concurrent",
    "asyncio",
    "threading",
    "_thread",
    "signal",
    "types",
    "cloudpickle",
    "dill",
    "joblib",
    "_osx_support",
    "_aix_support",
    "uuid",
    "imaplib",
    "operator",
    "_operator",
    "functools",
    "_functools",
    "copyreg",
    "copy_reg",
    "inspect",
    "gc",
    "weakref",
    "atexit",
    "site",
    "sitecustomize",
    "venv",
    "ensurepip",
    "zipimport",
    "numpy.f2py",
    "numpy.testing",
    "numpy.distutils",
    "numpy.lib.utils",
    "torch.serialization",
    "torch._inductor",
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.utils.cpp_extension",
    "torch._dynamo",
    "torch.fx",
    "torch.ops",
    "torch.classes",
    "tensorflow",
    "keras",
    "jinja2",
    "mako",
];

/// Modules whose globals reach files or the network.
const HIGH_MODULES: &[&str] = &[
    "io",
    "_io",
    "codecs",
    "logging",
    "shutil",
    "tempfile",
    "glob",
    "fileinput",
    "zipfile",
    "tarfile",
    "shelve",
    "dbm",
    "sqlite3",
    "pathlib",
    "socket",
    "_socket",
    "ssl",
    "select",
    "selectors",
    "socketserver",
    "http",
    "urllib",
    "urllib2",
    "urllib3",
    "httplib",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "poplib",
    "nntplib",
    "telnetlib",
    "xmlrpc",
    "xmlrpclib",
    "mmap",
    "fcntl",
    "resource",
];

/// Single functions that run code wherever they live.
const CRITICAL_NAMES: &[&str] = &[
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.getattr",
    "builtins.setattr",
    "builtins.delattr",
    "builtins.__import__",
    "builtins.breakpoint",
    "builtins.input",
    "builtins.globals",
    "builtins.locals",
    "builtins.vars",
    "builtins.help",
    "builtins.exit",
    "builtins.quit",
    "builtins.type",
    "builtins.object",
    "builtins.super",
    "builtins.classmethod",
    "builtins.staticmethod",
    "builtins.property",
    "builtins.memoryview",
    "builtins.apply",
    "builtins.execfile",
    "torch.load",
    "torch.save",
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
];

const HIGH_NAMES: &[&str] = &["builtins.open", "builtins.file", "numpy.tofile"];

/// How dangerous importing (and calling) `full` is. `Medium` for anything not known.
pub fn severity(full: &str) -> Severity {
    if full
        .split('.')
        .any(|p| p.len() > 4 && p.starts_with("__") && p.ends_with("__"))
    {
        return Severity::Critical;
    }
    if CRITICAL_NAMES.contains(&full) {
        return Severity::Critical;
    }
    let (module, _) = full.rsplit_once('.').unwrap_or((full, ""));
    let under =
        |m: &&str| module == *m || module.starts_with(m) && module[m.len()..].starts_with('.');
    if CRITICAL_MODULES.iter().any(under) {
        return Severity::Critical;
    }
    if HIGH_NAMES.contains(&full) || HIGH_MODULES.iter().any(under) {
        return Severity::High;
    }
    Severity::Medium
}

/// `_compat_pickle.IMPORT_MAPPING`: Python 2 module names, applied for protocols < 3.
const IMPORT_MAPPING: &[(&str, &str)] = &[
    ("__builtin__", "builtins"),
    ("copy_reg", "copyreg"),
    ("Queue", "queue"),
    ("SocketServer", "socketserver"),
    ("ConfigParser", "configparser"),
    ("repr", "reprlib"),
    ("tkFileDialog", "tkinter.filedialog"),
    ("tkSimpleDialog", "tkinter.simpledialog"),
    ("tkColorChooser", "tkinter.colorchooser"),
    ("tkCommonDialog", "tkinter.commondialog"),
    ("Dialog", "tkinter.dialog"),
    ("Tkdnd", "tkinter.dnd"),
    ("tkFont", "tkinter.font"),
    ("tkMessageBox", "tkinter.messagebox"),
    ("ScrolledText", "tkinter.scrolledtext"),
    ("Tkconstants", "tkinter.constants"),
    ("Tix", "tkinter.tix"),
    ("ttk", "tkinter.ttk"),
    ("Tkinter", "tkinter"),
    ("markupbase", "_markupbase"),
    ("_winreg", "winreg"),
    ("thread", "_thread"),
    ("dummy_thread", "_dummy_thread"),
    ("dbhash", "dbm.bsd"),
    ("dumbdbm", "dbm.dumb"),
    ("dbm", "dbm.ndbm"),
    ("gdbm", "dbm.gnu"),
    ("xmlrpclib", "xmlrpc.client"),
    ("SimpleXMLRPCServer", "xmlrpc.server"),
    ("httplib", "http.client"),
    ("htmlentitydefs", "html.entities"),
    ("HTMLParser", "html.parser"),
    ("Cookie", "http.cookies"),
    ("cookielib", "http.cookiejar"),
    ("BaseHTTPServer", "http.server"),
    ("test.test_support", "test.support"),
    ("commands", "subprocess"),
    ("urlparse", "urllib.parse"),
    ("robotparser", "urllib.robotparser"),
    ("urllib2", "urllib.request"),
    ("anydbm", "dbm"),
    ("_abcoll", "collections.abc"),
    ("cPickle", "pickle"),
    ("_elementtree", "xml.etree.ElementTree"),
    ("FileDialog", "tkinter.filedialog"),
    ("SimpleDialog", "tkinter.simpledialog"),
    ("DocXMLRPCServer", "xmlrpc.server"),
    ("SimpleHTTPServer", "http.server"),
    ("CGIHTTPServer", "http.server"),
    ("UserDict", "collections"),
    ("UserList", "collections"),
    ("UserString", "collections"),
    ("whichdb", "dbm"),
    ("StringIO", "io"),
    ("cStringIO", "io"),
    ("exceptions", "builtins"),
];

/// `_compat_pickle.NAME_MAPPING` (the entries that change more than the module).
/// (module, name) in a pickle -> (module, name) loaded.
type Mapping = ((&'static str, &'static str), (&'static str, &'static str));

const NAME_MAPPING: &[Mapping] = &[
    (("__builtin__", "xrange"), ("builtins", "range")),
    (("__builtin__", "reduce"), ("functools", "reduce")),
    (("__builtin__", "intern"), ("sys", "intern")),
    (("__builtin__", "unichr"), ("builtins", "chr")),
    (("__builtin__", "unicode"), ("builtins", "str")),
    (("__builtin__", "long"), ("builtins", "int")),
    (("__builtin__", "basestring"), ("builtins", "str")),
    (("itertools", "izip"), ("builtins", "zip")),
    (("itertools", "imap"), ("builtins", "map")),
    (("itertools", "ifilter"), ("builtins", "filter")),
    (("itertools", "ifilterfalse"), ("itertools", "filterfalse")),
    (("itertools", "izip_longest"), ("itertools", "zip_longest")),
    (
        ("UserDict", "IterableUserDict"),
        ("collections", "UserDict"),
    ),
    (("UserList", "UserList"), ("collections", "UserList")),
    (("UserString", "UserString"), ("collections", "UserString")),
    (("whichdb", "whichdb"), ("dbm", "whichdb")),
    (("_socket", "fromfd"), ("socket", "fromfd")),
    (
        ("_multiprocessing", "Connection"),
        ("multiprocessing.connection", "Connection"),
    ),
    (
        ("multiprocessing.process", "Process"),
        ("multiprocessing.context", "Process"),
    ),
    (
        ("multiprocessing.forking", "Popen"),
        ("multiprocessing.popen_fork", "Popen"),
    ),
    (
        ("urllib", "ContentTooShortError"),
        ("urllib.error", "ContentTooShortError"),
    ),
    (("urllib", "getproxies"), ("urllib.request", "getproxies")),
    (
        ("urllib", "pathname2url"),
        ("urllib.request", "pathname2url"),
    ),
    (("urllib", "quote_plus"), ("urllib.parse", "quote_plus")),
    (("urllib", "quote"), ("urllib.parse", "quote")),
    (("urllib", "unquote_plus"), ("urllib.parse", "unquote_plus")),
    (("urllib", "unquote"), ("urllib.parse", "unquote")),
    (
        ("urllib", "url2pathname"),
        ("urllib.request", "url2pathname"),
    ),
    (("urllib", "urlcleanup"), ("urllib.request", "urlcleanup")),
    (("urllib", "urlencode"), ("urllib.parse", "urlencode")),
    (("urllib", "urlopen"), ("urllib.request", "urlopen")),
    (("urllib", "urlretrieve"), ("urllib.request", "urlretrieve")),
    (("urllib2", "HTTPError"), ("urllib.error", "HTTPError")),
    (("urllib2", "URLError"), ("urllib.error", "URLError")),
];

/// Applies the Python 2 name mapping the unpickler uses for protocols < 3 (`fix_imports`).
pub fn map_py2<'a>(module: &'a str, name: &'a str) -> (&'a str, &'a str) {
    if let Some((_, to)) = NAME_MAPPING
        .iter()
        .find(|((m, n), _)| *m == module && *n == name)
    {
        return *to;
    }
    if let Some((_, to)) = IMPORT_MAPPING.iter().find(|(m, _)| *m == module) {
        return (to, name);
    }
    (module, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists() {
        assert!(Loader::Torch.allows("torch._utils._rebuild_tensor_v2"));
        assert!(Loader::Torch.allows("collections.OrderedDict"));
        assert!(!Loader::Torch.allows("numpy.dtype"));
        assert!(Loader::Numpy.allows("numpy._core.multiarray._reconstruct"));
        assert!(Loader::Pickle.allows("numpy.dtype"));
        assert!(!Loader::Pickle.allows("os.system"));
        assert_eq!(torch_set().len(), 144);
    }

    #[test]
    fn severities() {
        assert_eq!(severity("os.system"), Severity::Critical);
        assert_eq!(
            severity("asyncio.unix_events._UnixSubprocessTransport._start"),
            Severity::Critical
        );
        assert_eq!(severity("builtins.eval"), Severity::Critical);
        assert_eq!(severity("numpy.__builtins__"), Severity::Critical);
        assert_eq!(severity("logging.FileHandler"), Severity::High);
        assert_eq!(severity("_io.FileIO"), Severity::High);
        assert_eq!(severity("builtins.open"), Severity::High);
        assert_eq!(severity("sklearn.linear_model.Ridge"), Severity::Medium);
        assert_eq!(severity("osmosis.thing"), Severity::Medium);
        assert_eq!(map_py2("__builtin__", "set"), ("builtins", "set"));
        assert_eq!(map_py2("__builtin__", "xrange"), ("builtins", "range"));
    }
}
