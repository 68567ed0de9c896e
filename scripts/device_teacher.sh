# Sourced ON THE DEVICE by the device scripts: the teacher GGUF arrives in N pieces of <= 64 MiB
# (scripts/device_prepare.sh cuts them into .teacher1/ .. .teacherN/, each with `part` and `manifest`:
# "NAME N SHA256"), carried by back-to-back calls of a warm machine in any order and grouping.
#   teacher_take   keeps the pieces this call carries under $DEV/teacher/SHA/; once all N are there, joins
#                  them (temp file, sha256 check, rename) into $DEV/teacher/NAME; returns 1 while pieces are missing
#   teacher_path   the joined teacher's path (after teacher_take returned 0)
DEV=${DEV:-/tmp/jetdev}

teacher_take() {
  local p k name n sha have
  mkdir -p $DEV/teacher
  for p in .teacher*/; do
    [ -f "$p/manifest" ] && [ -f "$p/part" ] || continue
    read -r name n sha < "$p/manifest"
    k=${p#.teacher}; k=${k%/}
    mkdir -p $DEV/teacher/$sha
    cp "$p/manifest" $DEV/teacher/manifest
    [ -f $DEV/teacher/$name ] || cp "$p/part" $DEV/teacher/$sha/$k
  done
  [ -f $DEV/teacher/manifest ] || { echo "teacher: no piece carried yet (carry .teacher1 ...)"; return 1; }
  read -r name n sha < $DEV/teacher/manifest
  [ -f $DEV/teacher/$name ] && [ -f $DEV/teacher/$name.ok ] && return 0
  have=$(ls $DEV/teacher/$sha 2>/dev/null | wc -l)
  if [ "$have" -lt "$n" ]; then
    echo "teacher: $have of $n pieces of $name here; still to carry:$(for k in $(seq 1 "$n"); do [ -f $DEV/teacher/$sha/$k ] || printf ' .teacher%s' "$k"; done)"
    return 1
  fi
  for k in $(seq 1 "$n"); do cat $DEV/teacher/$sha/$k; done > $DEV/teacher/$name.tmp
  if [ "$(sha256sum < $DEV/teacher/$name.tmp | cut -d' ' -f1)" != "$sha" ]; then
    rm -rf $DEV/teacher/$name.tmp $DEV/teacher/$sha
    echo "teacher: joined $name has the wrong sha256; pieces dropped, carry them again"
    return 1
  fi
  mv $DEV/teacher/$name.tmp $DEV/teacher/$name && touch $DEV/teacher/$name.ok && rm -rf $DEV/teacher/$sha
  echo "teacher: $name joined from $n pieces (sha256 ok)"
}

teacher_path() { local name n sha; read -r name n sha < $DEV/teacher/manifest; echo $DEV/teacher/$name; }
