# Reads a Vagrantfile the way Vagrant does -- by running it -- against a
# minimal stand-in of the `Vagrant.configure` DSL, and prints one line per
# machine: name, hostname, private_network address, VirtualBox VM name and
# memory (MB).
#
#   ruby vagrantfile.rb PATH/Vagrantfile
#
# Only the settings the e2e stand-in acts on are read; every other setting is
# accepted and ignored, as long as it is a plain `name = value` or call. A
# machine without a hostname or a private_network address is an error, because
# the lab would have no way to reach it.

module Vagrant
  def self.require_version(*) end

  # Accepts any setting: `x.y = v`, `x.y(args)`, nested `x.y.z`.
  class Settings
    def initialize
      @values = {}
      @children = Hash.new { |h, k| h[k] = Settings.new }
    end

    def [](key)
      @values[key]
    end

    def method_missing(name, *args, **opts, &block)
      key = name.to_s
      if key.end_with?("=")
        @values[key.chomp("=")] = args.first
      elsif args.empty? && opts.empty? && block.nil?
        @children[key]
      else
        (@values[key] ||= []) << [args, opts]
        nil
      end
    end

    def respond_to_missing?(*)
      true
    end
  end

  class Machine
    attr_reader :name, :vm

    def initialize(name)
      @name = name
      @vm = MachineVm.new
    end
  end

  class MachineVm < Settings
    attr_reader :networks, :providers

    def initialize
      super
      @networks = []
      @providers = Hash.new { |h, k| h[k] = Settings.new }
    end

    def network(type, **opts)
      @networks << [type.to_s, opts]
    end

    def provider(name)
      yield @providers[name.to_s] if block_given?
    end
  end

  class RootVm < MachineVm
    attr_reader :machines

    def initialize
      super
      @machines = []
    end

    def define(name, **)
      machine = Machine.new(name.to_s)
      yield machine if block_given?
      @machines << machine
    end
  end

  class Config
    attr_reader :vm

    def initialize
      @vm = RootVm.new
    end

    def method_missing(*)
      Settings.new
    end

    def respond_to_missing?(*)
      true
    end
  end

  @configs = []

  class << self
    attr_reader :configs

    def configure(version)
      raise ArgumentError, "Vagrant.configure(#{version.inspect}): only \"2\" is known" unless version.to_s == "2"

      config = Config.new
      yield config
      @configs << config
    end
  end
end

path = ARGV.fetch(0) { abort "usage: vagrantfile.rb VAGRANTFILE" }
load File.expand_path(path)
machines = Vagrant.configs.flat_map { |c| c.vm.machines }
abort "#{path}: no config.vm.define: no machines" if machines.empty?
machines.each do |m|
  hostname = m.vm["hostname"] or abort "#{path}: machine #{m.name} has no vm.hostname"
  net = m.vm.networks.find { |type, _| type == "private_network" } or
    abort "#{path}: machine #{m.name} has no private_network"
  ip = net[1][:ip] or abort "#{path}: machine #{m.name}: private_network without ip:"
  vb = m.vm.providers["virtualbox"]
  vm_name = vb["name"] || m.name
  # VirtualBox's default for a VM without vb.memory.
  memory = Integer(vb["memory"] || 1024)
  puts [m.name, hostname, ip, vm_name, memory].join("\t")
end
