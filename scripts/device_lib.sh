# Sourced ON THE DEVICE by the device scripts (gpu_check.sh, gpu_postnas.sh). DEV=/tmp/jetdev survives
# between calls; carried paths do not, so what later calls need is copied there.
DEV=/tmp/jetdev
BUILD=build-gpu

source scripts/device_teacher.sh  # teacher_take, teacher_path

# device_phase1 [ninja targets...]: unpack .devdeps (debs, wheels), keep the teacher pieces carried and the commit,
# start the CUDA build in the background (ends by writing $DEV/build.rc).
device_phase1() {
  mkdir -p $DEV/root
  for f in .devdeps/deb/*.deb; do dpkg -x "$f" $DEV/root; done
  mkdir -p $DEV/root/usr/include && tar -C $DEV/root/usr/include -xJf .devdeps/boost-headers.tar.xz
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $DEV/site .devdeps/whl/*.whl > $DEV/pip.log 2>&1
  teacher_take || true
  cp .devdeps/commit $DEV/commit 2>/dev/null || true
  local torch_prefix
  torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
  setsid bash -c "cmake -S . -B $BUILD -G Ninja -DJET_CUDA=ON -DCMAKE_PREFIX_PATH='$torch_prefix;$DEV/root/usr' \
      -DPython3_EXECUTABLE=$(which python3) > $DEV/build.log 2>&1 && ninja -C $BUILD -j16 $* >> $DEV/build.log 2>&1; \
      echo \$? > $DEV/build.rc" < /dev/null > /dev/null 2>&1 &
  echo "phase 1: build started"
}
