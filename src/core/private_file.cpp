#include "private_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "error.hpp"
#include "cpp_only.hpp"  // last: proves no PostgreSQL header came in above

namespace gateway {

namespace {

// Opens `path` and checks that it is a regular file (not a symlink) private to the server user;
// returns the open descriptor and its status. Throws gateway::Error (F0000) with a hint.
int open_private(const std::string& path, const std::string& what, const std::string& create_hint,
                 struct stat* st) {
  auto fail = [&](const std::string& problem, std::string detail, std::string hint) {
    throw Error(sqlstate::kConfigFileError, what + " \"" + path + "\" " + problem,
                std::move(detail), std::move(hint));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int err = errno;
    fail("cannot be opened", std::string("open() failed: ") + std::strerror(err) + ".", create_hint);
  }
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    fail("is not a regular file", "", create_hint);
  }
  if (st->st_uid != ::geteuid()) {
    ::close(fd);
    fail("is not owned by the database server user",
         "The file is owned by uid " + std::to_string(st->st_uid) + ", the server runs as uid " +
             std::to_string(::geteuid()) + ".",
         "Change its owner to the database server user (chown).");
  }
  if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st->st_mode & 07777));
    fail("is accessible by group or others",
         std::string("Its permissions are ") + mode + "; it holds a secret and must be readable "
         "by the server user only.",
         "Run: chmod 600 on the file.");
  }
  return fd;
}

}  // namespace

void check_private_file(const std::string& path, const std::string& what,
                        const std::string& create_hint) {
  struct stat st {};
  ::close(open_private(path, what, create_hint, &st));
}

SecureBuffer read_private_file(const std::string& path, const std::string& what,
                               const std::string& contents, const std::string& create_hint,
                               std::size_t max_bytes, std::size_t* length) {
  auto fail = [&](const std::string& problem, std::string detail, std::string hint) {
    throw Error(sqlstate::kConfigFileError, what + " \"" + path + "\" " + problem,
                std::move(detail), std::move(hint));
  };
  struct stat st {};
  int fd = open_private(path, what, create_hint, &st);
  if (st.st_size <= 0 || static_cast<std::size_t>(st.st_size) > max_bytes) {
    ::close(fd);
    fail("does not hold " + contents,
         "It is " + std::to_string(st.st_size) + " bytes long; at most " +
             std::to_string(max_bytes) + " are expected.",
         create_hint);
  }
  SecureBuffer buffer(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  *length = done;
  return buffer;
}

}  // namespace gateway
