"""A Beam file system for tests: ``copyrename:///<local path>``, whose rename is a copy
and a delete that refuses to replace an existing file (as on HDFS; on GCS and S3 a
rename is also a copy and a delete), counting every operation."""

import collections
import os
import shutil

from apache_beam.io.filesystem import BeamIOError, FileMetadata
from apache_beam.io.localfilesystem import LocalFileSystem

PREFIX = "copyrename://"
OPERATIONS = collections.Counter()


def _local(path: str) -> str:
    return path[len(PREFIX):] if path.startswith(PREFIX) else path


class CopyRenameFileSystem(LocalFileSystem):

    @classmethod
    def scheme(cls):
        return "copyrename"

    def mkdirs(self, path):
        OPERATIONS["mkdirs"] += 1
        os.makedirs(_local(path), exist_ok=True)

    def _list(self, dir_or_prefix):
        OPERATIONS["list"] += 1
        root = _local(dir_or_prefix)
        for directory, _, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                yield FileMetadata(PREFIX + path, os.path.getsize(path), os.path.getmtime(path))

    def metadata(self, path):
        local = _local(path)
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def create(self, path, *args, **kwargs):
        OPERATIONS["create"] += 1
        os.makedirs(os.path.dirname(_local(path)), exist_ok=True)
        return super().create(_local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        OPERATIONS["open"] += 1
        return super().open(_local(path), *args, **kwargs)

    def exists(self, path):
        OPERATIONS["exists"] += 1
        return os.path.exists(_local(path))

    def size(self, path):
        return os.path.getsize(_local(path))

    def delete(self, paths):
        for path in paths:
            OPERATIONS["delete"] += 1
            os.remove(_local(path))

    def rename(self, sources, destinations):
        for source, destination in zip(sources, destinations):
            OPERATIONS["rename"] += 1
            if os.path.exists(_local(destination)):
                OPERATIONS["refused"] += 1
                raise BeamIOError("Rename operation failed",
                                  {(source, destination): IOError("destination exists")})
            shutil.copyfile(_local(source), _local(destination))
            os.remove(_local(source))
