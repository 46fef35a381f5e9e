"""Import a module without executing the imports it makes only for code a replay never runs.

panther_analysis_tool's loader (analysis_utils) imports, at its top and through its utilities,
the clients of Panther's API (gql, aiohttp), requests and boto3: about a second of start-up that
reading a repository never uses. While `import_deferring` imports such a module, each of the named
packages is a placeholder: a name imported from it is a stand-in that imports the real package the
first time it is called, read, subclassed or checked against. A replay never touches them, so
they are never imported; any other program in the process gets the real packages (the
placeholders are gone from sys.modules when the import returns).

If the module uses a deferred name while it is being imported, that import is undone and done
again normally: deferral can cost nothing but the time of one attempt.
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from contextlib import contextmanager


class DeferredUse(Exception):
    """A deferred name was used while the module deferring it was still being imported."""


def _real(module_name):
    """The real module, once no placeholder stands in for it (after the deferring import)."""
    module = importlib.import_module(module_name)
    if isinstance(module, Placeholder):
        raise DeferredUse(f"{module_name} was used while imports of it were being deferred")
    return module


class Deferred:
    """A name imported from a placeholder: the real object, looked up on first use."""

    __slots__ = ("_module", "_name", "_target")

    def __init__(self, module, name):
        self._module = module
        self._name = name
        self._target = None

    def _resolve(self):
        if self._target is None:
            self._target = _attribute(_real(self._module), self._module, self._name)
        return self._target

    def __call__(self, *args, **kwargs):
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, name):
        # Python's own probes (typing's __origin__, inspect's __wrapped__, ...) while the
        # module is still being imported are not uses: they must not undo the deferral.
        if name.startswith("__") and _deferring_now(self._module):
            raise AttributeError(name)
        return getattr(self._resolve(), name)

    def __getitem__(self, item):
        return self._resolve()[item]

    def __mro_entries__(self, bases):
        return (self._resolve(),)

    def __instancecheck__(self, instance):
        return isinstance(instance, self._resolve())

    def __subclasscheck__(self, subclass):
        return issubclass(subclass, self._resolve())

    def __or__(self, other):
        return self._resolve() | other

    def __ror__(self, other):
        return other | self._resolve()

    def __repr__(self):
        return f"<deferred {self._module}.{self._name}>"


def _deferring_now(module_name):
    return type(sys.modules.get(module_name)) is Placeholder


def _attribute(module, module_name, name):
    try:
        return getattr(module, name)
    except AttributeError:
        return importlib.import_module(f"{module_name}.{name}")


class Placeholder(types.ModuleType):
    """Stands in for a deferred module while the deferring import runs; afterwards, any module
    holding it reads the real module's attributes through it."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:  # still deferring
            return Deferred(self.__name__, name)
        return _attribute(_real(self.__name__), self.__name__, name)


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, packages):
        self.packages = frozenset(packages)

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] not in self.packages:
            return None
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec):
        module = Placeholder(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


@contextmanager
def _deferring(packages):
    finder = _PlaceholderFinder(packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name, module in sys.modules.items() if type(module) is Placeholder]:
            del sys.modules[name]


def import_deferring(module_name, packages):
    """importlib.import_module(module_name), with `packages` (top-level names) not yet imported
    deferred until something uses them."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    before = set(sys.modules)
    try:
        with _deferring(packages - before):
            return importlib.import_module(module_name)
    except DeferredUse:
        for name in set(sys.modules) - before:
            del sys.modules[name]
        return importlib.import_module(module_name)
